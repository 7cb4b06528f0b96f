// How one try of a request ends when it does not end with an answer passed on: the
// outbound proxy's forward loop decides from these what comes next (another target, a
// retry, a 504, a 502).
import type { TryResult } from './outliers.ts';

/** A failure before any response byte: the next target may be tried. */
export class RetryableFailure extends Error {
  constructor(
    message: string,
    readonly eject: boolean,
    /** The connection was lost, not refused: a new one to the same target may work. */
    readonly reconnect = false,
    /**
     * How the try counts for outlier detection: no connection ('local'), or no answer
     * ('reset'); a connection the peer closed gracefully (GOAWAY) counts for nothing, and so
     * does a try already counted where it failed (`null`).
     */
    readonly result: TryResult | null | undefined = reconnect ? undefined : eject ? 'local' : 'reset',
  ) {
    super(message);
  }
}

/**
 * The request cannot be sent (again): its body outgrew the replay buffer while a retry
 * waited, or its head cannot be written as HTTP/1.1. Nothing is said against the endpoint.
 */
export class Unsendable extends Error {}

/** The gRPC statuses a retry policy can name (cancelled, deadline-exceeded, resource-exhausted, unavailable). */
export const RETRIED_GRPC = new Set(['1', '4', '8', '14']);

/** A request (or one try of it) ran out of time before its answer started. */
export class TimedOut extends Error {
  constructor(readonly timeout: 'request' | 'per-try') {
    super(timeout === 'request' ? 'the request timed out' : 'the try timed out');
  }
}

/** An answer a retry policy does not pass on: the request is tried again. */
export class RetriedAnswer extends Error {
  constructor(
    /** The HTTP or gRPC status that was retried. */
    readonly reason: string,
    /** How the try counts for outlier detection. */
    readonly result: TryResult,
  ) {
    super(`retried on ${reason}`);
  }
}

/** The far side takes no framed tunnel for the port (its app speaks h2c): the try goes as HTTP/2. */
export class FramingRefused extends Error {
  constructor() {
    super('the far side takes no HTTP/1.1 framing for this port');
  }
}

/**
 * A tunnel cut before its answer under a request that is not sent again (not idempotent):
 * `counts` says whether the cut is held against the endpoint (a pooled tunnel its peer ended
 * cleanly as it was lent again is not).
 */
export class TunnelCut extends Error {
  constructor(
    message: string,
    readonly counts: boolean,
  ) {
    super(message);
  }
}
