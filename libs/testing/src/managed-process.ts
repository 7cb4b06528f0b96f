import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestbedError } from './errors.ts';

/** How long a server gets to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;
/** How often readiness is probed while a server starts. */
const READY_POLL_MS = 100;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Scenario protected against: 1. a test fails or the runner is interrupted; 2. the test
 * process exits without calling stop(); 3. a server would outlive it and hold its port.
 * On exit every child still alive is killed.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export interface ManagedProcessOptions {
  /** Short name used in errors and progress output, e.g. `etcd[east]`. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** File that receives the process's stdout and stderr. */
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** A server process started by the test bed, with its output kept in a log file. */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitState: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(options: ManagedProcessOptions, child: ChildProcess) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        this.exitState = { code, signal };
        resolve(this.exitState);
      });
    });
  }

  /** Starts the process; rejects if it cannot be spawned at all (missing binary). */
  static async start(options: ManagedProcessOptions): Promise<ManagedProcess> {
    installExitHook();
    const log = createWriteStream(options.logFile, { flags: 'a' });
    const child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once('exit', () => setImmediate(() => log.end()));
    live.add(child);
    const managed = new ManagedProcess(options, child);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (error) => {
        live.delete(child);
        reject(
          new TestbedError(
            'CAUSEWAY_TESTBED_START_FAILED',
            `${options.name}: cannot run ${options.command}`,
            {
              cause: error,
            },
          ),
        );
      });
    });
    return managed;
  }

  /**
   * Starts the process and waits until `probe` says it is ready; a process that does not
   * become ready is killed before the error is thrown.
   */
  static async startReady(
    options: ManagedProcessOptions,
    probe: () => Promise<boolean>,
    timeoutMs: number,
  ): Promise<ManagedProcess> {
    const proc = await ManagedProcess.start(options);
    try {
      await proc.waitUntilReady(probe, timeoutMs);
      return proc;
    } catch (error) {
      await proc.kill();
      throw error;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitState === undefined;
  }

  /**
   * Polls `probe` until it returns true. Fails early, with the end of the log, if the
   * process exits first, and after `timeoutMs` otherwise.
   */
  async waitUntilReady(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new TestbedError(
          'CAUSEWAY_TESTBED_START_FAILED',
          `${this.name} exited (${this.describeExit()}) before it was ready; end of ${this.logFile}:\n${await this.tail()}`,
        );
      }
      try {
        if (await probe()) return;
      } catch (error) {
        lastError = error;
      }
      await sleep(READY_POLL_MS);
    }
    throw new TestbedError(
      'CAUSEWAY_TESTBED_NOT_READY',
      `${this.name} was not ready after ${timeoutMs} ms; end of ${this.logFile}:\n${await this.tail()}`,
      { cause: lastError },
    );
  }

  /** The last lines of the log, for error messages. */
  async tail(lines = 30): Promise<string> {
    try {
      const text = await readFile(this.logFile, 'utf8');
      return text.split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills at once, as a crash or `kill -9` would. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  private describeExit(): string {
    const state = this.exitState;
    if (!state) return 'running';
    return state.signal ? `signal ${state.signal}` : `code ${state.code}`;
  }
}

/**
 * Runs `attempt` with fresh ports until it starts, for servers that lose the race for a
 * port between `freePort()` and their own bind. Other failures are not retried.
 */
export async function startWithPortRetry<T>(
  attempt: () => Promise<T>,
  isPortClash: (error: unknown) => boolean,
  tries = 3,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= tries || !isPortClash(error)) throw error;
    }
  }
}

/** True when an error's message (or its log excerpt) shows a failed bind. */
export function looksLikePortClash(error: unknown): boolean {
  const text = error instanceof Error ? error.message : String(error);
  return /address already in use|EADDRINUSE|bind: address/i.test(text);
}
