// One try of a request sent as HTTP/1.1 bytes inside a framed mesh tunnel (the sidecar's own
// per-connection path, used here for one request at a time): the head written by this side,
// the body framed by its length or chunked, the answer's head parsed by the strict parser and
// its body's content handed to the caller's exchange as a stream. A tunnel whose exchange
// ended cleanly goes back to the pool for the next request to its target.
import type { OutgoingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import { Readable, Writable } from 'node:stream';
import { BodyTracker, HeadScan, parseResponseHead, writeRequestHead } from '@causeway/http';
import type { AppExchange } from './exchange.ts';
import { fieldsOf, type ReplayableBody } from './http-util.ts';
import { resultOfAnswer } from './outliers.ts';
import type { LeaseHandler, TunnelLease } from './outbound.ts';
import { IDEMPOTENT } from './request-policy.ts';
import type { Outcome } from './responses.ts';
import type { Target } from './routing.ts';
import {
  FramingRefused,
  RetriedAnswer,
  RetryableFailure,
  TimedOut,
  TunnelCut,
  Unsendable,
} from './try-errors.ts';

const EMPTY: Buffer = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** What a framed try needs of the outbound proxy. */
export interface FramedTryHost {
  /**
   * A framed tunnel to `target` (an idle one, else a new one; `fresh`: a new one), or why
   * there is none ('l7': the far side takes no framing for the port).
   */
  tunnelTo(target: Target, fresh: boolean): Promise<TunnelLease | 'l7' | string>;
  /** A tunnel whose exchange ended cleanly, for the next request to its target. */
  returnTunnel(lease: TunnelLease): void;
}

export interface FramedTryLimits {
  /** A new tunnel, not an idle one (the try follows one whose tunnel was cut). */
  readonly fresh?: boolean;
  /** The try's own time limit (until its answer starts). */
  readonly perTryMs?: number;
  /** Aborted when the whole request's time is up. */
  readonly expiry?: AbortSignal;
}

/** The answer's body as the caller's exchange reads it: the content, unframed, as it comes. */
class FramedAnswer extends Readable {
  lease: TunnelLease | undefined;

  constructor(private readonly cancelled: () => void) {
    super();
  }

  override _read(): void {
    this.lease?.resume();
  }

  /** The caller went away, or will not take the rest: the try is cut. */
  close(): void {
    if (this.destroyed) return;
    this.cancelled();
    this.destroy();
  }
}

/** The request's body into a tunnel: as it is (a known length), or chunked. */
class FramedBody extends Writable {
  constructor(
    private readonly lease: TunnelLease,
    private readonly chunked: boolean,
    private readonly sent: () => void,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // (A tunnel cut meanwhile takes nothing more: the try is over.)
    if (chunk.length === 0 || this.lease.closed) return callback();
    const written = this.chunked
      ? this.lease.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, CRLF]))
      : this.lease.write(chunk);
    if (written) callback();
    else this.lease.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.chunked && !this.lease.closed) this.lease.write(LAST_CHUNK);
    this.sent();
    callback();
  }
}

/**
 * The request head as HTTP/1.1 from the headers the forward loop keeps (pseudo-headers
 * give the method, target and Host): `chunked` when a body has no known length.
 */
export function framedHead(
  headers: OutgoingHttpHeaders,
  hasBody: boolean,
): { readonly head: Buffer; readonly chunked: boolean } {
  const fields = ['host', String(headers[':authority'] ?? '')];
  let length = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */ || name === 'host') continue;
    // (Without a body a length can only say 0, which goes on as the client said it.)
    if (name === 'content-length') length = true;
    if (!Array.isArray(value)) fields.push(name, String(value));
    // Cookies are one field in HTTP/1.1 (RFC 9113 §8.2.3 splits them only for HTTP/2).
    else if (name === 'cookie') fields.push(name, value.join('; '));
    else for (const item of value) fields.push(name, item);
  }
  const chunked = hasBody && !length;
  if (chunked) fields.push('transfer-encoding', 'chunked');
  return {
    head: writeRequestHead(String(headers[':method']), String(headers[':path']), fields),
    chunked,
  };
}

/** An HTTP/1.1 answer head's fields as HTTP/2-style headers, repeats read as Node reads them. */
function answerHeaders(
  status: number,
  fields: readonly string[],
): http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader {
  return { ...fieldsOf(fields), ':status': status } as http2.IncomingHttpHeaders &
    http2.IncomingHttpStatusHeader;
}

/**
 * One try on `target` over a framed tunnel, with the contract of the HTTP/2 try: resolves
 * with the outcome once the answer was passed on; rejects with `RetryableFailure` (nothing
 * was sent back, another target may be tried), `RetriedAnswer`, `TimedOut`, `Unsendable`,
 * `FramingRefused` (the try is to be made as HTTP/2), or any other error for a reset after
 * the request went out.
 */
export function framedTry(
  host: FramedTryHost,
  target: Target,
  headers: OutgoingHttpHeaders,
  body: ReplayableBody | undefined,
  exchange: AppExchange,
  /** Whether an answer is retried instead of passed on (then the try rejects with RetriedAnswer). */
  retryAnswer: (status: number, grpcStatus: string) => boolean,
  limits: FramedTryLimits,
): Promise<Outcome> {
  const method = String(headers[':method']);
  return new Promise<Outcome>((resolve, reject) => {
    /** Waiting for the answer's head; relaying its body; over (the tunnel is let go). */
    let state: 'waiting' | 'relaying' | 'over' = 'waiting';
    let lease: TunnelLease | undefined;
    let sink: FramedBody | undefined;
    let requestSent = body === undefined;
    let received = 0;
    let pending: Buffer = EMPTY;
    const scan = new HeadScan();
    let tracker: BodyTracker | undefined;
    let keepAlive = true;
    let perTry: NodeJS.Timeout | undefined;
    const answer = new FramedAnswer(() => {
      if (state === 'waiting') giveUp(new Error('the caller went away'));
      else if (state === 'relaying') letGo(false);
    });

    /** The tunnel is let go: back to the pool when the exchange ended cleanly, else cut. */
    const letGo = (clean: boolean): void => {
      if (state === 'over') return;
      state = 'over';
      clearTimeout(perTry);
      limits.expiry?.removeEventListener('abort', expired);
      sink?.destroy();
      if (!lease) return;
      lease.attach(undefined);
      if (clean && requestSent && keepAlive && !lease.closed) {
        lease.resume();
        host.returnTunnel(lease);
      } else lease.release(!clean);
    };
    /** Before an answer was passed on: the try ends with `error`. */
    const giveUp = (error: Error): void => {
      if (state !== 'waiting') return;
      body?.hold();
      letGo(false);
      reject(error);
    };
    /** An answer under way cannot be completed: the caller's exchange is cut short. */
    const cutShort = (): void => {
      if (state !== 'relaying') return;
      letGo(false);
      answer.destroy();
      exchange.abort();
    };
    function expired(): void {
      if (state === 'relaying') cutShort();
      else giveUp(new TimedOut('request'));
    }
    if (limits.expiry?.aborted) return reject(new TimedOut('request'));
    limits.expiry?.addEventListener('abort', expired, { once: true });
    if (limits.perTryMs !== undefined)
      perTry = setTimeout(
        () =>
          // A try that took too long counts as a 504 for retries.
          giveUp(
            retryAnswer(504, '') ? new RetriedAnswer('per-try-timeout', 'reset') : new TimedOut('per-try'),
          ),
        limits.perTryMs,
      );
    exchange.cancelWhenGone(answer);

    const relay = (status: number, fields: readonly string[], ended: boolean): void => {
      state = 'relaying';
      clearTimeout(perTry);
      body?.commit();
      void exchange
        .relay(answer, answerHeaders(status, fields), ended ? http2.constants.NGHTTP2_FLAG_END_STREAM : 0)
        .then((outcome) => {
          // (The caller's side is complete or gone: a tunnel still relaying is cut.)
          letGo(false);
          resolve(outcome);
        });
    };

    /** Bytes of the body: its content goes on; its end lets the tunnel go. */
    const feedBody = (chunk: Buffer): void => {
      const progress = tracker!.feed(chunk, 0);
      if ('error' in progress) return cutShort();
      if (!progress.done) return;
      answer.push(null);
      // Bytes after the answer's end: the tunnel is out of step and cannot carry another.
      letGo(progress.consumed === chunk.length);
    };

    const handler: LeaseHandler = {
      data(chunk) {
        if (state === 'over') return;
        received += chunk.length;
        if (tracker) return feedBody(chunk);
        let buffer: Buffer = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
        for (;;) {
          const parsed = parseResponseHead(buffer, 0, method, undefined, scan);
          if (parsed.kind === 'incomplete') {
            pending = buffer;
            return;
          }
          pending = EMPTY;
          if (parsed.kind === 'error')
            return giveUp(new Error(`the upstream answer is malformed: ${parsed.reason}`));
          if (parsed.tunnel) return giveUp(new Error('the upstream switched protocols unasked'));
          buffer = buffer.subarray(parsed.end);
          // An interim answer (100 Continue): the final one follows.
          if (parsed.interim) {
            if (buffer.length === 0) return;
            continue;
          }
          const { status } = parsed;
          if (retryAnswer(status, ''))
            return giveUp(new RetriedAnswer(String(status), resultOfAnswer(status, '')));
          keepAlive = parsed.keepAlive;
          const framing = parsed.body;
          if (framing.type === 'none' || (framing.type === 'length' && framing.length === 0)) {
            relay(status, parsed.headers, true);
            return letGo(buffer.length === 0);
          }
          tracker = new BodyTracker(framing, undefined, 'response', (content) => {
            if (!answer.push(content)) lease?.pause();
          });
          relay(status, parsed.headers, false);
          if (buffer.length > 0) feedBody(buffer);
          return;
        }
      },
      end(error) {
        if (state === 'relaying') {
          // An answer framed by the end of the connection ends here; any other is cut short.
          const progress = error === undefined ? tracker?.finish() : undefined;
          if (progress && !('error' in progress)) {
            answer.push(null);
            return letGo(false);
          }
          return cutShort();
        }
        if (state !== 'waiting') return;
        const why = `the tunnel closed unanswered${error ? ` (${error})` : ''}`;
        // A pooled tunnel the far side ended cleanly as it was lent again says nothing against
        // the endpoint; anything else is a reset. An idempotent request may be sent again (once
        // more to the same target, on a new tunnel).
        const graceful = error === undefined && lease?.reused === true && received === 0;
        if (IDEMPOTENT.has(method))
          return giveUp(new RetryableFailure(why, false, true, graceful ? null : 'reset'));
        giveUp(new TunnelCut(why, !graceful));
      },
    };

    host.tunnelTo(target, limits.fresh === true).then(
      (got) => {
        if (got === 'l7') return giveUp(new FramingRefused());
        if (typeof got === 'string') return giveUp(new RetryableFailure(got, false, false, null));
        // (Given up meanwhile: out of time, or the caller went away.)
        if (state !== 'waiting') return got.release(true);
        lease = got;
        answer.lease = got;
        let sent: ReturnType<typeof framedHead>;
        try {
          sent = framedHead(headers, body !== undefined);
        } catch (error) {
          return giveUp(
            new Unsendable(`the request cannot be sent as HTTP/1.1: ${(error as Error).message}`),
          );
        }
        got.attach(handler);
        if (state !== 'waiting') return;
        got.write(sent.head);
        if (!body) return;
        sink = new FramedBody(got, sent.chunked, () => (requestSent = true));
        try {
          body.sendTo(sink);
        } catch (error) {
          giveUp(new Unsendable((error as Error).message));
        }
      },
      (error: unknown) => giveUp(error instanceof Error ? error : new Error(String(error))),
    );
  });
}
