import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findOnPath } from './binaries.ts';
import { TestbedError } from './errors.ts';
import type { KubeControlPlane } from './kube.ts';

/** kubectl: KUBECTL_BIN when set, else the one on PATH. */
export function kubectlBinary(): string {
  const found = process.env.KUBECTL_BIN || findOnPath('kubectl');
  if (found) return found;
  throw new TestbedError(
    'CAUSEWAY_TESTBED_BINARY_MISSING',
    "kubectl is not installed: 'npm run env' builds it, or KUBECTL_BIN may name one you have.",
  );
}

/**
 * Runs kubectl with `args` against a test control plane (its admin kubeconfig) and resolves
 * with what it printed; a failure rejects with kubectl's own error output.
 */
export async function kubectl(
  plane: Pick<KubeControlPlane, 'kubeconfigPath'>,
  args: readonly string[],
): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(
      kubectlBinary(),
      ['--kubeconfig', plane.kubeconfigPath, ...args],
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: 60_000,
      },
    );
    return stdout;
  } catch (error) {
    const failed = error as Error & { stderr?: string };
    if (failed instanceof TestbedError) throw failed;
    throw new Error(`kubectl ${args.join(' ')}: ${failed.stderr?.trim() || failed.message}`);
  }
}

/** `kubectl get … -o json`, parsed. */
export async function kubectlGet<T>(
  plane: Pick<KubeControlPlane, 'kubeconfigPath'>,
  args: readonly string[],
): Promise<T> {
  return JSON.parse(await kubectl(plane, ['get', ...args, '-o', 'json'])) as T;
}
