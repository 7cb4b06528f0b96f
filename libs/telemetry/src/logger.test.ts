import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const LOGGER = fileURLToPath(new URL('./logger.ts', import.meta.url));
const SHUTDOWN = fileURLToPath(new URL('./shutdown.ts', import.meta.url));

/** A process that runs `body` with `logger` made by createLogger (stdout: a pipe, as in production). */
function run(body: string) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { createLogger } from ${JSON.stringify(LOGGER)};
       import { exitWhenLogged } from ${JSON.stringify(SHUTDOWN)};
       const logger = createLogger({ component: 'test' });
       ${body}`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>);
    for (const waiter of waiters.splice(0)) waiter();
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const line = async (msg: string) => {
    while (!lines.some((entry) => entry.msg === msg))
      await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { child, lines, exited, line };
}

test('a single log line reaches stdout while the process runs on', { timeout: 30_000 }, async () => {
  // The process logs one line and then waits for our word (a byte on stdin) to log another and exit.
  const { child, line, exited, lines } = run(`
    logger.info('first');
    process.stdin.once('data', () => { logger.info('second'); process.exit(0); });`);
  await line('first');
  child.stdin.end('go');
  assert.equal(await exited, 0);
  assert.deepEqual(
    lines.map((entry) => [entry.msg, entry.component, entry.level]),
    [
      ['first', 'test', 'info'],
      ['second', 'test', 'info'],
    ],
  );
});

test(
  '5,000 lines logged just before a component exits (more than a pipe holds) all reach stdout, whole and in order',
  { timeout: 30_000 },
  async () => {
    const { exited, lines } = run(`
    for (let i = 0; i < 5000; i++) logger.info({ i }, 'line');
    exitWhenLogged(0);`);
    assert.equal(await exited, 0);
    assert.equal(lines.length, 5000);
    assert.ok(lines.every((entry, i) => entry.i === i));
  },
);
