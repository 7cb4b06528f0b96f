import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot, withEnv } from '@causeway/testing';

/** A component process started from a settings file, with its JSON log lines collected. */
export interface ComponentProcess {
  readonly app: string;
  readonly child: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  /** The first log line with this message (waits for it). */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** `http://…` of the admin port. */
  readonly adminUrl: string;
  readonly exited: Promise<number | null>;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Log lines kept per process (the oldest are dropped). */
const KEPT_LOGS = 5_000;

/**
 * V8 flags per component. A sidecar's young generation is capped: Node 24 sizes it up to
 * 3 x 16 MB under load, and a proxy's garbage is short-lived (measured: 120 -> 100 MB RSS
 * under `wrk -c32`, no fewer requests per second). Deployments start sidecars the same way.
 */
export const COMPONENT_NODE_FLAGS: Readonly<Record<string, readonly string[]>> = {
  sidecar: ['--max-semi-space-size=4'],
};

/**
 * Starts `apps/<app>/src/main.ts` (through tsx, or its built bundle) with a settings file
 * and an admin port of its own, and resolves once it has started. Its stderr goes to ours; its JSON log lines are
 * collected (and passed to `onLog`).
 */
export async function startComponentProcess(
  app: string,
  settingsFile: string,
  options: {
    onLog?: (entry: Record<string, unknown>) => void;
    stderr?: 'inherit' | 'ignore';
    /** Run the bundle from `npm run build` (`apps/<app>/dist/main.js`) instead of the sources. */
    built?: boolean;
    /** Variables added to this process's environment (what `${NAME}` in the settings reads). */
    env?: Record<string, string>;
  } = {},
): Promise<ComponentProcess> {
  const entry = options.built
    ? [path.join(repoRoot, 'apps', app, 'dist/main.js')]
    : ['--import', 'tsx', path.join(repoRoot, 'apps', app, 'src/main.ts')];
  // (The child takes this process's environment, with `env` added, when it is spawned.)
  const child = withEnv(options.env ?? {}, () =>
    spawn(
      process.execPath,
      [
        ...(COMPONENT_NODE_FLAGS[app] ?? []),
        ...entry,
        '--config',
        settingsFile,
        '--admin-address',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', options.stderr ?? 'inherit'] },
    ),
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      entry = { msg: line };
    }
    logs.push(entry);
    if (logs.length > KEPT_LOGS) logs.splice(0, logs.length - KEPT_LOGS);
    options.onLog?.(entry);
    for (const waiter of waiters.splice(0)) waiter();
  });
  const waitForLog = async (msg: string, timeoutMs = 30_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs.find((entry) => entry.msg === msg);
      if (found) return found;
      if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `${app}: no '${msg}' log within ${timeoutMs} ms (exit ${child.exitCode ?? child.signalCode}); last logs: ${JSON.stringify(logs.slice(-10))}`,
        );
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  };
  let adminUrl: string;
  try {
    adminUrl = String((await waitForLog('started')).admin);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    app,
    child,
    logs,
    waitForLog,
    adminUrl,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return await exited;
    },
  };
}
