// Every app answers --help, serves its admin port, and stops cleanly on SIGTERM.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { eventually, freePort, repoRoot } from '@causeway/testing';

// The federation controller needs a settings file; it has its own test file. The
// sidecar and the gateways need one too: they run in mesh.test.ts, ingress.test.ts and
// east-west-gateway.test.ts. What needs no settings is tested on a bare component.
const APPS: Record<string, string> = {
  sidecar: path.join(repoRoot, 'apps/sidecar/src/main.ts'),
  'ingress-gateway': path.join(repoRoot, 'apps/ingress-gateway/src/main.ts'),
  'east-west-gateway': path.join(repoRoot, 'apps/east-west-gateway/src/main.ts'),
  bare: path.join(repoRoot, 'test/support/bare-component.ts'),
};
const NEEDS_SETTINGS = new Set(['sidecar', 'ingress-gateway', 'east-west-gateway']);
const tsx = ['--import', 'tsx'];

for (const [app, main] of Object.entries(APPS)) {
  describe(app, () => {
    test('--help names the command and its options', () => {
      const result = spawnSync(process.execPath, [...tsx, main, '--help'], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: causeway-${app} \\[options\\]`));
      assert.match(result.stdout, /--admin-address <host:port>/);
      assert.match(result.stdout, /--log-level <level>/);
    });

    test('a bad flag value is refused, naming the option', () => {
      const result = spawnSync(process.execPath, [...tsx, main, '--admin-address', '127.0.0.1:70000'], {
        encoding: 'utf8',
      });
      assert.notEqual(result.status, 0);
      assert.match(
        result.stderr,
        /--admin-address <host:port>' argument '127\.0\.0\.1:70000' is invalid\. port must be at most 65535/,
      );
    });

    if (NEEDS_SETTINGS.has(app)) {
      test('without a settings file it stops and says so', () => {
        const result = spawnSync(process.execPath, [...tsx, main], { encoding: 'utf8' });
        assert.notEqual(result.status, 0);
        assert.match(result.stderr, /required option '--config <file>' not specified/);
      });
      return;
    }

    test('a bad environment value is refused, naming the field and value', () => {
      const result = spawnSync(process.execPath, [...tsx, main], {
        encoding: 'utf8',
        env: { ...process.env, CAUSEWAY_LOG_LEVEL: 'loud' },
      });
      assert.equal(result.status, 2);
      assert.match(result.stderr, /logLevel: .* \(got "loud"\)/);
    });

    test('CAUSEWAY_ADMIN_ADDRESS and CAUSEWAY_LOG_LEVEL take effect; a flag wins over the environment', async () => {
      const port = await freePort();
      const quiet = spawn(process.execPath, [...tsx, main], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, CAUSEWAY_ADMIN_ADDRESS: `127.0.0.1:${port}`, CAUSEWAY_LOG_LEVEL: 'warn' },
      });
      let quietOut = '';
      quiet.stdout.setEncoding('utf8').on('data', (chunk: string) => (quietOut += chunk));
      const quietExit = new Promise<number | null>((resolve) => quiet.once('exit', resolve));
      try {
        await eventually(async () =>
          assert.equal((await fetch(`http://127.0.0.1:${port}/livez`)).status, 200),
        );
      } finally {
        quiet.kill('SIGTERM');
      }
      assert.equal(await quietExit, 0);
      assert.equal(quietOut, '', 'info lines were logged at level warn');

      const flagged = spawn(process.execPath, [...tsx, main, '--admin-address', '127.0.0.1:0'], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, CAUSEWAY_ADMIN_ADDRESS: `127.0.0.1:${port}` },
      });
      const flaggedExit = new Promise<number | null>((resolve) => flagged.once('exit', resolve));
      try {
        const started = await new Promise<Record<string, unknown>>((resolve) =>
          createInterface({ input: flagged.stdout }).on('line', (line) => {
            const entry = JSON.parse(line) as Record<string, unknown>;
            if (entry.msg === 'started') resolve(entry);
          }),
        );
        assert.notEqual(
          new URL(String(started.admin)).port,
          String(port),
          'the environment won over the flag',
        );
      } finally {
        flagged.kill('SIGTERM');
      }
      assert.equal(await flaggedExit, 0);
    });

    test('serves /livez, /readyz and /metrics, then stops on SIGTERM', async () => {
      const child = spawn(process.execPath, [...tsx, main, '--admin-address', '127.0.0.1:0'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const lines = createInterface({ input: child.stdout });
      const logs: Array<Record<string, unknown>> = [];
      const started = new Promise<Record<string, unknown>>((resolve) =>
        lines.on('line', (line) => {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'started') resolve(entry);
        }),
      );
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const entry = await started;
      assert.equal(entry.component, app);
      const admin = String(entry.admin);
      assert.equal((await fetch(`${admin}/livez`)).status, 200);
      assert.equal((await fetch(`${admin}/readyz`)).status, 200);
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, new RegExp(`causeway_build_info\\{component="${app}",version="[^"]+"\\} 1`));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.ok(logs.some((log) => log.msg === 'stopped'));
    });
  });
}
