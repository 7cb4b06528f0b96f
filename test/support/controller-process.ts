// A federation-controller started as its own process from a settings file, with its JSON
// log lines collected, and a workload certificate from its signing service.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { CertificateRenewer, type WorkloadCredentials } from '@causeway/identity';
import { repoRoot } from '@causeway/testing';

const main = path.join(repoRoot, 'apps/federation-controller/src/main.ts');

export interface ControllerProcess {
  readonly child: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  /** The first log line with this message (waits for it). */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** `https://…` of the signing and discovery service. */
  readonly signingUrl: string;
  /** `http://…` of the admin port. */
  readonly adminUrl: string;
  readonly exited: Promise<number | null>;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function writeYaml(file: string, value: unknown): Promise<string> {
  await writeFile(file, stringify(value));
  return file;
}

export async function startControllerProcess(settingsFile: string): Promise<ControllerProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', main, '--config', settingsFile, '--admin-address', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
    for (const waiter of waiters.splice(0)) waiter();
  });
  const waitForLog = async (msg: string, timeoutMs = 30_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs.find((entry) => entry.msg === msg);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no '${msg}' log within ${timeoutMs} ms; got ${JSON.stringify(logs.slice(-20))}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  const signingUrl = String((await waitForLog('signing and discovery service listening')).signing);
  const adminUrl = String((await waitForLog('started')).admin);
  return {
    child,
    logs,
    waitForLog,
    signingUrl,
    adminUrl,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return await exited;
    },
  };
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
