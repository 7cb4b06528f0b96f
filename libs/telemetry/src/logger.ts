import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Lines are written out once this many bytes are waiting... */
const LOG_BATCH_BYTES = 4096;
/** ...or this long after the first of them, whichever comes first. */
const LOG_FLUSH_MS = 50;
/**
 * Lines held in memory at most while stdout does not keep up (a stalled reader): past this,
 * lines are dropped rather than the process growing or stopping to wait.
 */
const MAX_PENDING_LOG_BYTES = 16 * 1024 * 1024;

/**
 * Structured JSON logs on stdout, one object per line, with the component named. Written off
 * the event loop in batches (one system call for many access log lines under load, a line
 * never held longer than LOG_FLUSH_MS), and what is pending is written out when the process
 * exits.
 */
export function createLogger(options: {
  component: string;
  level?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const settings: pino.LoggerOptions = {
    level: options.level ?? 'info',
    base: { component: options.component },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (options.destination) return pino(settings, options.destination as pino.DestinationStream);
  const stdout = pino.destination({
    dest: 1,
    sync: false,
    minLength: LOG_BATCH_BYTES,
    maxLength: MAX_PENDING_LOG_BYTES,
  });
  // A reader of stdout that went away (EPIPE) costs the log lines, not the process.
  stdout.on('error', () => undefined);
  let waiting = false;
  const flush = (): void => {
    waiting = false;
    try {
      stdout.flush();
    } catch {
      // (destroyed after an error: nothing more can be written)
    }
  };
  return pino(
    {
      ...settings,
      hooks: {
        streamWrite: (line) => {
          if (!waiting) {
            waiting = true;
            setTimeout(flush, LOG_FLUSH_MS).unref();
          }
          return line;
        },
      },
    },
    stdout,
  );
}
