import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestbedError } from './errors.ts';

/**
 * The repository root: the nearest folder above this file whose package.json is the
 * `causeway` workspace root (found by walking up, so it also holds for a bundled build).
 */
export const repoRoot = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name === 'causeway') return dir;
    } catch {
      // no package.json here
    }
    if (path.dirname(dir) === dir) {
      throw new TestbedError('CAUSEWAY_TESTBED_BINARY_MISSING', `no causeway checkout above ${start}`);
    }
  }
}

/** Debian puts some servers in sbin, which a non-root PATH may lack. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of an executable on PATH (or in sbin), or undefined. */
export function findOnPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The servers the test bed runs from Debian packages, with their package names. */
export const SYSTEM_SERVERS = {
  'nats-server': 'nats-server',
  'redis-server': 'redis-server',
  prometheus: 'prometheus',
} as const;

export type SystemServer = keyof typeof SYSTEM_SERVERS;

/** Path of a system server binary, or an error that says how to install it. */
export function requireSystemServer(name: SystemServer): string {
  const found = findOnPath(name);
  if (found) return found;
  throw new TestbedError(
    'CAUSEWAY_TESTBED_BINARY_MISSING',
    `${name} is not installed. Run 'npm test' or 'npm run env' as root on Debian/Ubuntu to install it, ` +
      `or install it yourself (Debian: apt-get install ${SYSTEM_SERVERS[name]}).`,
  );
}

/** Paths of the Kubernetes control-plane binaries. */
export interface KubeBinaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  /** kubectl of the API server's version (KUBECTL_BIN, else the one built, else PATH's). */
  readonly kubectl: string;
  /** grpcurl, the standard gRPC command-line client (GRPCURL_BIN, else the one built, else PATH's). */
  readonly grpcurl: string;
  /** promtool of Prometheus 3 (PROMTOOL_BIN, else the one built, else PATH's). */
  readonly promtool: string;
}

let cachedKubeBinaries: Promise<KubeBinaries> | undefined;

/**
 * kube-apiserver, etcd and kubectl: from KUBE_APISERVER_BIN / ETCD_BIN / KUBECTL_BIN when
 * set, otherwise built once from the Go module proxy by scripts/build-kube-bins.sh into a cache outside the repo.
 * The build's progress is shown on stderr.
 */
export function kubeBinaries(): Promise<KubeBinaries> {
  cachedKubeBinaries ??= resolveKubeBinaries();
  return cachedKubeBinaries;
}

async function resolveKubeBinaries(): Promise<KubeBinaries> {
  const fromEnvApiserver = process.env.KUBE_APISERVER_BIN;
  const fromEnvEtcd = process.env.ETCD_BIN;
  let built: string | undefined;
  if (!fromEnvApiserver || !fromEnvEtcd) built = await runBuildScript();
  const result = {
    kubeApiserver: fromEnvApiserver || path.join(built!, 'kube-apiserver'),
    etcd: fromEnvEtcd || path.join(built!, 'etcd'),
    kubectl:
      process.env.KUBECTL_BIN || (built ? path.join(built, 'kubectl') : (findOnPath('kubectl') ?? 'kubectl')),
    grpcurl:
      process.env.GRPCURL_BIN || (built ? path.join(built, 'grpcurl') : (findOnPath('grpcurl') ?? 'grpcurl')),
    promtool:
      process.env.PROMTOOL_BIN ||
      (built ? path.join(built, 'promtool') : (findOnPath('promtool') ?? 'promtool')),
  };
  for (const [variable, file] of [
    ['KUBE_APISERVER_BIN', result.kubeApiserver],
    ['ETCD_BIN', result.etcd],
  ] as const) {
    if (!isExecutable(file)) {
      throw new TestbedError(
        'CAUSEWAY_TESTBED_BINARY_MISSING',
        `${variable}: ${file} is not an executable file`,
      );
    }
  }
  return result;
}

async function runBuildScript(): Promise<string> {
  const script = path.join(repoRoot, 'scripts/build-kube-bins.sh');
  return await new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('error', (error) =>
      reject(new TestbedError('CAUSEWAY_TESTBED_BINARY_MISSING', `cannot run ${script}`, { cause: error })),
    );
    child.once('exit', (code) => {
      const dir = out.trim().split('\n').pop();
      if (code === 0 && dir) resolve(dir);
      else
        reject(
          new TestbedError(
            'CAUSEWAY_TESTBED_BINARY_MISSING',
            `building kube-apiserver, etcd and kubectl failed (exit ${code}); set KUBE_APISERVER_BIN, ETCD_BIN and KUBECTL_BIN to use binaries you have`,
          ),
        );
    });
  });
}
