// A federation-controller started as its own process from a settings file, with its JSON
// log lines collected, and a workload certificate from its signing service.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { escapeEnvironment } from '@causeway/config';
import { CertificateRenewer, type WorkloadCredentials } from '@causeway/identity';
import { TrustDirectory } from '@causeway/pki';
import { repoRoot } from '@causeway/testing';
import { startComponentProcess, type ComponentProcess } from '@causeway/cli/processes';

export { startComponentProcess, type ComponentProcess };

const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const run = promisify(execFile);

/**
 * A trust directory made with the CLI: a root, one intermediate per cluster, and (with a
 * NATS URL) the bundle published.
 */
export async function initTrust(
  dir: string,
  trustDomain: string,
  clusters: readonly string[],
  natsUrl?: string,
): Promise<TrustDirectory> {
  await run(process.execPath, [cli, 'trust', 'init', '--dir', dir, '--trust-domain', trustDomain]);
  for (const cluster of clusters)
    await run(process.execPath, [cli, 'trust', 'issue-intermediate', '--dir', dir, '--cluster', cluster]);
  if (natsUrl) await run(process.execPath, [cli, 'trust', 'publish', '--dir', dir, '--nats-url', natsUrl]);
  return new TrustDirectory(dir);
}

/**
 * A controller's settings from a trust directory: cluster, state under `stateDir`, NATS,
 * the cluster's intermediate and bundle, signing on any free port with one join token for
 * every namespace. Callers add or override the rest.
 */
export function controllerSettings(options: {
  directory: TrustDirectory;
  cluster: string;
  trustDomain: string;
  stateDir: string;
  natsUrl?: string;
  token: string;
}): Record<string, unknown> {
  const files = options.directory.clusterFiles(options.cluster);
  return {
    cluster: options.cluster,
    trustDomain: options.trustDomain,
    stateDir: options.stateDir,
    ...(options.natsUrl ? { nats: { url: options.natsUrl } } : {}),
    trust: {
      intermediateCertificate: files.certificate,
      intermediateKey: files.privateKey,
      bundle: options.directory.bundleFile,
    },
    signing: {
      address: '127.0.0.1:0',
      joinTokens: [{ token: options.token, namespaces: ['*'], serviceAccounts: ['*'] }],
    },
  };
}

export interface ControllerProcess extends ComponentProcess {
  /** `https://…` of the signing and discovery service. */
  readonly signingUrl: string;
}

/** A settings file, read back as written (a `$` in a path is not taken for a variable). */
export async function writeYaml(file: string, value: unknown): Promise<string> {
  await writeFile(file, stringify(escapeEnvironment(value)));
  return file;
}

export async function startControllerProcess(settingsFile: string): Promise<ControllerProcess> {
  const component = await startComponentProcess('federation-controller', settingsFile);
  const signingUrl = String((await component.waitForLog('signing and discovery service listening')).signing);
  return { ...component, signingUrl };
}

/** A workload certificate for `ns/sa` from a controller's signing service (join token). */
export async function workloadCredentials(options: {
  signingUrl: string;
  rootPem: string;
  trustDomain: string;
  cluster: string;
  namespace: string;
  serviceAccount: string;
  token: string;
}): Promise<WorkloadCredentials> {
  const renewer = new CertificateRenewer({
    controllerUrl: options.signingUrl,
    bootstrapRoots: [options.rootPem],
    trustDomain: options.trustDomain,
    cluster: options.cluster,
    namespace: options.namespace,
    serviceAccount: options.serviceAccount,
    instance: `${options.serviceAccount}-0`,
    token: () => options.token,
    onCredentials: () => {},
  });
  const credentials = await renewer.start();
  await renewer.stop();
  return credentials;
}
