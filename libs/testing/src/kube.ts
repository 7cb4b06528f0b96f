import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { kubeBinaries } from './binaries.ts';
import { installCrds } from './crds.ts';
import { TestbedError } from './errors.ts';
import { ManagedProcess, looksLikePortClash, startWithPortRetry } from './managed-process.ts';
import { freePorts } from './ports.ts';
import { httpGet } from './probe.ts';
import { makeServiceAccountKeys, makeServingCertificates } from './certs.ts';
import { makeTempDir } from './temp-dir.ts';

export interface KubeControlPlaneOptions {
  /** Cluster name; used for the kubeconfig context and in messages. */
  readonly name: string;
  /** The cluster's service CIDR, e.g. `10.96.0.0/16`; give every cluster its own. */
  readonly serviceCidr: string;
  /** Install the project's CRDs once the API server is ready (default true). */
  readonly installCrds?: boolean;
  readonly startTimeoutMs?: number;
}

/** A real kube-apiserver + etcd pair on loopback, with an admin kubeconfig. */
export interface KubeControlPlane {
  readonly name: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  readonly serviceCidr: string;
  /** Admin kubeconfig (group system:masters), usable by kubectl and client-node. */
  readonly kubeconfigPath: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  readonly caCertPem: string;
  readonly etcdUrl: string;
  readonly dir: string;
  /** A client-node KubeConfig for the admin user. */
  kubeConfig(): KubeConfig;
  readonly processes: () => { apiserver: ManagedProcess; etcd: ManagedProcess };
  dispose(): Promise<void>;
}

/** Starts etcd, then kube-apiserver, waits for `/readyz`, then installs the CRDs. */
export async function startKubeControlPlane(options: KubeControlPlaneOptions): Promise<KubeControlPlane> {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(options.name)) {
    throw new TestbedError(
      'CAUSEWAY_TESTBED_BAD_OPTION',
      `cluster name '${options.name}' is not a DNS label`,
    );
  }
  const timeout = options.startTimeoutMs ?? 90_000;
  const binaries = await kubeBinaries();
  const temp = await makeTempDir(`kube-${options.name}`);
  const certs = await makeServingCertificates(temp.path, `kube-apiserver-${options.name}`);
  const saKeys = await makeServiceAccountKeys(temp.path);
  const adminToken = randomBytes(24).toString('hex');
  const tokenFile = path.join(temp.path, 'tokens.csv');
  await writeFile(tokenFile, `${adminToken},causeway-admin,causeway-admin,"system:masters"\n`, {
    mode: 0o600,
  });

  let etcd: ManagedProcess | undefined;
  let apiserver: ManagedProcess | undefined;
  const cleanup = async (): Promise<void> => {
    await apiserver?.stop();
    await etcd?.stop();
  };

  let etcdUrl = '';
  let securePort = 0;
  try {
    await startWithPortRetry(async () => {
      const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
      etcdUrl = `http://127.0.0.1:${clientPort}`;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      etcd = await ManagedProcess.startReady(
        {
          name: `etcd[${options.name}]`,
          command: binaries.etcd,
          args: [
            `--name=${options.name}`,
            `--data-dir=${path.join(temp.path, 'etcd')}`,
            `--listen-client-urls=${etcdUrl}`,
            `--advertise-client-urls=${etcdUrl}`,
            `--listen-peer-urls=${peerUrl}`,
            `--initial-advertise-peer-urls=${peerUrl}`,
            `--initial-cluster=${options.name}=${peerUrl}`,
            '--unsafe-no-fsync',
            '--watch-progress-notify-interval=5s',
            '--log-level=warn',
          ],
          logFile: path.join(temp.path, 'etcd.log'),
        },
        async () => {
          const health = await httpGet(`${etcdUrl}/health`);
          return health.status === 200 && health.body.includes('"health":"true"');
        },
        timeout,
      );
    }, looksLikePortClash);

    const caCertPem = await readFile(certs.caCert, 'utf8');
    await startWithPortRetry(async () => {
      [securePort] = (await freePorts(1)) as [number];
      apiserver = await ManagedProcess.startReady(
        {
          name: `kube-apiserver[${options.name}]`,
          command: binaries.kubeApiserver,
          args: [
            `--etcd-servers=${etcdUrl}`,
            `--secure-port=${securePort}`,
            '--bind-address=127.0.0.1',
            // No default route on a loopback-only machine: the API server cannot guess its address.
            '--advertise-address=127.0.0.1',
            // Keep 127.0.0.1 out of the `kubernetes` Service's endpoints.
            '--endpoint-reconciler-type=none',
            `--cert-dir=${path.join(temp.path, 'apiserver-certs')}`,
            `--tls-cert-file=${certs.serverCert}`,
            `--tls-private-key-file=${certs.serverKey}`,
            `--client-ca-file=${certs.caCert}`,
            `--token-auth-file=${tokenFile}`,
            '--authorization-mode=RBAC',
            `--service-account-issuer=https://127.0.0.1:${securePort}`,
            `--service-account-key-file=${saKeys.publicKey}`,
            `--service-account-signing-key-file=${saKeys.privateKey}`,
            `--service-cluster-ip-range=${options.serviceCidr}`,
            '--disable-admission-plugins=ServiceAccount',
            '--allow-privileged=true',
            '--profiling=false',
            '--enable-priority-and-fairness=false',
            '--v=0',
          ],
          logFile: path.join(temp.path, 'kube-apiserver.log'),
        },
        async () => {
          const ready = await httpGet(`https://127.0.0.1:${securePort}/readyz`, {
            ca: caCertPem,
            headers: { authorization: `Bearer ${adminToken}` },
          });
          return ready.status === 200;
        },
        timeout,
      );
    }, looksLikePortClash);

    const server = `https://127.0.0.1:${securePort}`;
    const kubeconfigPath = path.join(temp.path, 'kubeconfig');
    await writeFile(
      kubeconfigPath,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: options.name, cluster: { server, 'certificate-authority': certs.caCert } }],
        users: [{ name: `${options.name}-admin`, user: { token: adminToken } }],
        contexts: [{ name: options.name, context: { cluster: options.name, user: `${options.name}-admin` } }],
        'current-context': options.name,
      }),
      { mode: 0o600 },
    );
    const kubeConfig = (): KubeConfig => {
      const config = new KubeConfig();
      config.loadFromFile(kubeconfigPath);
      return config;
    };
    if (options.installCrds !== false) await installCrds(kubeConfig());
    return {
      name: options.name,
      server,
      serviceCidr: options.serviceCidr,
      kubeconfigPath,
      caCertPem,
      etcdUrl,
      dir: temp.path,
      kubeConfig,
      processes: () => ({ apiserver: apiserver!, etcd: etcd! }),
      dispose: async () => {
        await cleanup();
        await temp.remove();
      },
    };
  } catch (error) {
    await cleanup();
    // Logs are kept on failure: the error message names them.
    throw error;
  }
}

/** The service CIDR given to the i-th simulated cluster (0-based): 10.96.0.0/16, 10.97.0.0/16, … */
export function serviceCidrFor(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 150) {
    throw new TestbedError('CAUSEWAY_TESTBED_BAD_OPTION', `cluster index ${index} is out of range 0..150`);
  }
  return `10.${96 + index}.0.0/16`;
}

/** Waits until `check` stops throwing, for eventual state in the API server. */
export async function eventually<T>(
  check: () => Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await sleep(intervalMs);
    }
  }
}
