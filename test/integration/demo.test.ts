// The README's main command: `npm run demo` runs two clusters in file mode, checks
// cross-cluster HTTP and gRPC, the caller's identity and failover, shows a live view, and
// leaves no process behind on Ctrl-C.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { repoRoot } from '@causeway/testing';

const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');

/** Processes whose command line mentions a demo folder. */
const demoProcesses = (): string[] =>
  execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes('causeway-demo-'));

for (const mode of ['auto', 'L7'] as const)
  test(
    `the demo (--mode ${mode}) passes every check, shows a live view, and Ctrl-C leaves no process behind`,
    { timeout: 180_000 },
    async () => {
      const child = spawn(process.execPath, [cli, 'demo', '--json', '--mode', mode], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const stdout: string[] = [];
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const liveLine = new Promise<string>((resolve) =>
        createInterface({ input: child.stdout }).on('line', (line) => {
          stdout.push(line);
          if (/^\d\d:\d\d:\d\d {2}west\/web -> /.test(line)) resolve(line);
        }),
      );
      const live = await Promise.race([liveLine, exited.then((code) => `exited ${code}`)]);
      assert.match(live, /west\/web -> cart\.shop\.svc\.clusterset\.local: cart-west \d+/, stderr);
      const result = JSON.parse(stdout[0]!) as {
        ok: boolean;
        checks: Array<{ name: string; ok: boolean; detail: string }>;
      };
      assert.deepEqual(
        result.checks.map((check) => [check.name, check.ok]),
        [
          ['cross-cluster-http', true],
          ['cross-cluster-grpc', true],
          ['mtls-identity', true],
          ['failover', true],
        ],
        JSON.stringify(result.checks),
      );
      assert.equal(result.ok, true);
      assert.ok(demoProcesses().length > 3, 'the demo processes are not running');
      child.kill('SIGINT');
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /stopped; no process left behind/);
      assert.deepEqual(demoProcesses(), []);
    },
  );
