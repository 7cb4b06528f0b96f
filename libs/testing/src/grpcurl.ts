import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isExecutable, kubeBinaries } from './binaries.ts';
import { TestbedError } from './errors.ts';

/**
 * Runs grpcurl (built with the Kubernetes binaries, or GRPCURL_BIN) with `args` and resolves
 * with what it printed; a failure rejects with grpcurl's own error output.
 */
export async function grpcurl(args: readonly string[], timeoutMs = 30_000): Promise<string> {
  const { grpcurl: binary } = await kubeBinaries();
  if (!isExecutable(binary))
    throw new TestbedError(
      'CAUSEWAY_TESTBED_BINARY_MISSING',
      `grpcurl (${binary}) is not an executable file: 'npm run env' builds it, or GRPCURL_BIN may name one you have.`,
    );
  try {
    return (await promisify(execFile)(binary, [...args], { timeout: timeoutMs })).stdout;
  } catch (error) {
    const failed = error as { stderr?: string; message: string };
    throw new Error(`grpcurl ${args.join(' ')}: ${failed.stderr?.trim() || failed.message}`);
  }
}
