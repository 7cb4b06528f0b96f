import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { isExecutable, kubeBinaries } from './binaries.ts';
import { TestbedError } from './errors.ts';
import type { KubeControlPlane } from './kube.ts';

/** kubectl: KUBECTL_BIN when set, else the one built with kube-apiserver, else PATH's. */
export async function kubectlBinary(): Promise<string> {
  const { kubectl } = await kubeBinaries();
  if (isExecutable(kubectl)) return kubectl;
  throw new TestbedError(
    'CAUSEWAY_TESTBED_BINARY_MISSING',
    `kubectl (${kubectl}) is not an executable file: 'npm run env' builds it, or KUBECTL_BIN may name one you have.`,
  );
}

/**
 * Runs kubectl with `args` against a test control plane (its admin kubeconfig) and resolves
 * with what it printed; a failure rejects with kubectl's own error output.
 */
export async function kubectl(
  plane: Pick<KubeControlPlane, 'kubeconfigPath' | 'dir'>,
  args: readonly string[],
): Promise<string> {
  const binary = await kubectlBinary();
  try {
    const { stdout } = await promisify(execFile)(
      binary,
      [
        '--kubeconfig',
        plane.kubeconfigPath,
        // (Its discovery cache in the control plane's folder, not in ~/.kube.)
        '--cache-dir',
        path.join(plane.dir, 'kubectl-cache'),
        ...args,
      ],
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: 60_000,
      },
    );
    return stdout;
  } catch (error) {
    const failed = error as Error & { stderr?: string };
    throw new Error(`kubectl ${args.join(' ')}: ${failed.stderr?.trim() || failed.message}`);
  }
}

/** `kubectl get … -o json`, parsed. */
export async function kubectlGet<T>(
  plane: Pick<KubeControlPlane, 'kubeconfigPath' | 'dir'>,
  args: readonly string[],
): Promise<T> {
  return JSON.parse(await kubectl(plane, ['get', ...args, '-o', 'json'])) as T;
}
