import type { Logger } from 'pino';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits 0 (1 if stopping failed) once the log
 * lines are out. A second signal while stopping exits at once.
 */
export function onShutdownSignal(logger: Logger, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop(signal).then(
      () => {
        logger.info('stopped');
        exitWhenLogged(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'stopping failed');
        exitWhenLogged(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

/** How long an exit waits at most for stdout to take the log lines still queued. */
const EXIT_LOG_GRACE_MS = 2_000;

/**
 * Exits with `code` once every log line written so far has reached stdout: a pipe that is
 * full queues lines in the process, and `process.exit` would drop them (the last lines, the
 * ones that say why). A reader that stalls or has gone holds the exit at most
 * EXIT_LOG_GRACE_MS.
 */
export function exitWhenLogged(code: number): void {
  setTimeout(() => process.exit(code), EXIT_LOG_GRACE_MS).unref();
  process.stdout.write('', () => process.exit(code));
}
