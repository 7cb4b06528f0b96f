import http from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import {
  BodyTracker,
  HeadScan,
  headerValue,
  normalizePath,
  parseRequestHead,
  writeRequestHead,
  writeResponseHead,
  type PathNormalizationOptions,
  type RequestHead,
} from '@causeway/http';
import { H1Answer } from './h1-answer.ts';
import { splice } from './tunnel.ts';

const EMPTY: Buffer = Buffer.alloc(0);
/**
 * Fields the app must not get from the caller: what this side states (the caller's identity;
 * underscore spellings too, which CGI-style servers merge) and the sidecars' own markers.
 */
const SPOOFABLE = new Set(['x-forwarded-client-cert', 'x-causeway-upstream-failure']);
/** Whether a field name is one of `SPOOFABLE` in any mix of `-` and `_`. */
const spoofable = (name: string): boolean =>
  SPOOFABLE.has(name.includes('_') ? name.replace(/_/g, '-') : name);
/**
 * Upgrades carried: WebSocket. Any other (h2c, TLS) would turn the connection into a
 * protocol whose requests the sidecar does not read: its fields are dropped, and the app
 * answers the request as it is.
 */
const UPGRADES = new Set(['websocket']);
/** Refusals on one tunnel before it is closed (a caller that only sends refused requests). */
const MAX_REFUSALS = 100;

/** What a framed tunnel asks of the inbound side for each request. */
export interface FramedRequestChecks {
  readonly pathNormalization: Partial<PathNormalizationOptions> | undefined;
  /** An incomplete request head gets 408 after this long; a tunnel with nothing in flight is closed after `idleMs`. */
  readonly requestHeadMs: number;
  readonly idleMs: number;
  /**
   * A request upgraded the tunnel (101): from here on it is bytes both ways, as authorized
   * for that request; `cut` ends it (a new config no longer allows the request).
   */
  upgraded(
    request: { method: string; path: string; headers: readonly string[] },
    cut: () => void,
  ): () => void;
  /** The caller's `x-forwarded-client-cert` value. */
  readonly clientCert: string;
  /** Authorization of one request: undefined when it may pass, else why not. */
  authorize(method: string, path: string, headers: readonly string[]): string | undefined;
  /** One exchange, for metrics and the access log. */
  record(entry: {
    method: string;
    path: string;
    status: number;
    seconds: number;
    headers: readonly string[];
  }): void;
}

/** One request in flight on the tunnel. */
interface Exchange {
  readonly head: RequestHead;
  readonly path: string;
  /** The normalized target the app got (authorized as such). */
  readonly target: string;
  /** The request asked for an upgrade that is carried (WebSocket). */
  readonly upgrade: boolean;
  readonly started: bigint;
  readonly body: BodyTracker;
  requestDone: boolean;
}

/**
 * An L7 tunnel on the inbound side: an HBONE stream whose caller's sidecar framed it as
 * HTTP/1.1 exchanges, one at a time, for a service port that needs L7 here (a path, method or
 * header rule). Each request head is parsed by the strict parser, its path normalized and the
 * request authorized; only then do its head (rewritten: the normalized path, the caller's
 * identity) and its body, as far as its framing goes, reach the app over this tunnel's own
 * connection. Nothing else does: a refused request's body is never sent, and after a refusal
 * that leaves bytes unread the tunnel ends.
 */
export class InboundH1Tunnel {
  private pending: Buffer = EMPTY;
  private readonly scan = new HeadScan();
  private readonly answer: H1Answer;
  private exchange: Exchange | undefined;
  private done = false;
  /** After a 101: the tunnel's bytes pass as they are, and its end is the splice's. */
  private spliced = false;
  /** The caller sent its FIN after its last request: the tunnel ends after that answer. */
  private callerEnded = false;
  /** When the head being received started (0: none is incomplete). */
  private headSince = 0;
  private refusals = 0;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly app: Socket,
    private readonly checks: FramedRequestChecks,
    private readonly ended: () => void,
  ) {
    this.answer = new H1Answer(stream);
    // Nothing for a while: an idle tunnel ends, a head that never completes gets 408.
    stream.setTimeout(checks.idleMs, this.onIdle);
    stream.on('data', this.onData);
    stream.once('end', () => {
      this.callerEnded = true;
      if (!this.exchange?.requestDone) this.end(false);
    });
    stream.once('error', () => this.end(true));
    stream.once('close', () => this.end(true));
    app.on('data', this.onAnswer);
    app.once('end', this.onAppEnd);
    app.once('error', () => this.end(true));
    // Closed in the middle of an answer: the caller must see it cut short, not complete.
    app.once('close', () => this.end(this.exchange !== undefined && this.answer.answered));
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    const exchange = this.exchange;
    if (exchange && !exchange.requestDone) return this.sendBody(exchange, chunk);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    // The next request waits for the answer to this one.
    if (exchange) this.stream.pause();
    else this.next();
  };

  private readonly onIdle = (): void => {
    // Waiting for the app's answer is not idleness.
    if (this.done || this.exchange) return;
    if (this.pending.length > 0) return this.refuse(408, 'the request head did not complete in time', true);
    this.end(false);
  };

  private next(): void {
    if (this.done || this.exchange || this.pending.length === 0) return;
    const parsed = parseRequestHead(this.pending, 0, undefined, this.scan);
    if (parsed.kind === 'incomplete') {
      if (this.headSince === 0) this.headSince = Date.now();
      else if (Date.now() - this.headSince > this.checks.requestHeadMs)
        this.refuse(408, 'the request head did not complete in time', true);
      return;
    }
    this.headSince = 0;
    if (parsed.kind === 'error') return this.refuse(parsed.status, `${parsed.code}: ${parsed.reason}`, true);
    const rest = this.pending.subarray(parsed.end);
    // A refusal keeps the tunnel only when the request had no body to skip.
    const close = parsed.body.type !== 'none' || !parsed.keepAlive;
    if (parsed.method === 'CONNECT' || !parsed.target.startsWith('/'))
      return this.refuse(400, 'a request in a tunnel names a path', true);
    // Authorization sees exactly what the app will get: the normalized origin-form target.
    const normalized = normalizePath(parsed.target, this.checks.pathNormalization);
    if (!normalized.ok) return this.refuse(400, `${normalized.code}: ${normalized.reason}`, close, rest);
    const denied = this.checks.authorize(parsed.method, normalized.target, parsed.headers);
    if (denied !== undefined) {
      this.checks.record({
        method: parsed.method,
        path: normalized.path,
        status: 403,
        seconds: 0,
        headers: parsed.headers,
      });
      return this.refuse(403, `RBAC: access denied (${denied})`, close, rest);
    }
    // Only a WebSocket upgrade is carried: any other Upgrade (h2c...) loses its fields.
    const upgradeTo = parsed.upgrade ? headerValue(parsed.headers, 'upgrade')?.toLowerCase() : undefined;
    const upgrade = upgradeTo !== undefined && UPGRADES.has(upgradeTo);
    const headers: string[] = [];
    for (let k = 0; k < parsed.headers.length; k += 2) {
      const name = parsed.headers[k]!;
      if (spoofable(name)) continue;
      if (!upgrade && (name === 'upgrade' || name === 'http2-settings')) continue;
      headers.push(name, parsed.headers[k + 1]!);
    }
    headers.push('x-forwarded-client-cert', this.checks.clientCert);
    const body = new BodyTracker(parsed.body);
    const empty = body.feed(EMPTY, 0);
    const exchange: Exchange = {
      head: parsed,
      path: normalized.path,
      target: normalized.target,
      upgrade,
      started: process.hrtime.bigint(),
      body,
      requestDone: 'done' in empty && empty.done,
    };
    this.answer.start(parsed.method);
    this.exchange = exchange;
    this.pending = EMPTY;
    this.app.write(writeRequestHead(parsed.method, normalized.target, headers, parsed.version));
    if (rest.length > 0) {
      if (exchange.requestDone) this.pending = rest;
      else this.sendBody(exchange, rest);
    }
  }

  /** Body bytes of the request in flight: as far as its framing goes, to the app. */
  private sendBody(exchange: Exchange, chunk: Buffer): void {
    const progress = exchange.body.feed(chunk, 0);
    if ('error' in progress) {
      if (this.answer.answered) return this.end(true);
      this.exchange = undefined;
      this.finish(exchange, progress.error.status);
      return this.refuse(progress.error.status, progress.error.reason, true);
    }
    const body = progress.consumed === chunk.length ? chunk : chunk.subarray(0, progress.consumed);
    if (body.length > 0 && !this.app.write(body)) {
      this.stream.pause();
      this.app.once('drain', () => this.stream.resume());
    }
    if (progress.done) {
      exchange.requestDone = true;
      if (progress.consumed < chunk.length) {
        this.pending = chunk.subarray(progress.consumed);
        this.stream.pause();
      }
    }
  }

  /** Bytes from the app: the answer to the request in flight, passed back with its framing followed. */
  private readonly onAnswer = (chunk: Buffer): void => {
    const exchange = this.exchange;
    // Bytes with no request to answer: the app is out of step, the tunnel cannot go on.
    if (!exchange) return this.end(true);
    this.stream.cork();
    let step;
    try {
      step = this.answer.feed(chunk);
    } finally {
      this.stream.uncork();
    }
    if (this.answer.backedUp) {
      this.app.pause();
      this.stream.once('drain', () => this.app.resume());
    }
    switch (step.kind) {
      case 'more':
        return;
      case 'error':
        if (!this.answer.answered) {
          this.exchange = undefined;
          this.finish(exchange, 502);
          return this.refuse(502, `the app answered badly: ${step.reason}`, true);
        }
        return this.end(true);
      case 'tunnel':
        // A 101 to a request that asked for no carried upgrade: the app is out of step.
        if (!exchange.upgrade) return this.end(true);
        // 101: the app and the caller talk their new protocol, both ways as bytes, for as
        // long as the request that asked for it would still be allowed.
        this.finish(exchange, this.answer.status);
        this.exchange = undefined;
        this.done = true;
        this.spliced = true;
        this.stream.off('data', this.onData);
        this.app.off('data', this.onAnswer);
        if (step.rest.length > 0) this.stream.write(step.rest);
        if (this.pending.length > 0) this.app.write(this.pending);
        this.pending = EMPTY;
        this.stream.setTimeout(0);
        this.stream.resume();
        {
          const forget = this.checks.upgraded(
            { method: exchange.head.method, path: exchange.target, headers: exchange.head.headers },
            () => {
              this.stream.destroy();
              this.app.destroy();
            },
          );
          splice(this.stream, this.app, () => {
            forget();
            this.ended();
          });
        }
        return;
      case 'done': {
        this.exchange = undefined;
        this.finish(exchange, this.answer.status);
        const reusable =
          step.excess === 0 && exchange.requestDone && exchange.head.keepAlive && this.answer.keepAlive;
        if (!reusable || this.callerEnded) return this.end(false);
        this.stream.resume();
        this.next();
      }
    }
  };

  private readonly onAppEnd = (): void => {
    const exchange = this.exchange;
    // An answer framed by the end of the connection is complete now; any other is cut short.
    if (exchange && this.answer.endedCleanly()) {
      this.exchange = undefined;
      this.finish(exchange, this.answer.status);
    }
    this.end(false);
  };

  private finish(exchange: Exchange, status: number): void {
    this.checks.record({
      method: exchange.head.method,
      path: exchange.path,
      status,
      seconds: Number(process.hrtime.bigint() - exchange.started) / 1e9,
      headers: exchange.head.headers,
    });
  }

  /**
   * An answer of the sidecar's own. `close`: the tunnel ends after it (the request's body, if
   * any, is not read); otherwise the next request may follow (`rest`: the bytes after this one).
   */
  private refuse(status: number, message: string, close: boolean, rest = EMPTY): void {
    // A caller that sends nothing but refused requests is not answered forever.
    if (++this.refusals >= MAX_REFUSALS) close = true;
    const body = Buffer.from(`${message}\n`);
    this.stream.cork();
    this.stream.write(
      writeResponseHead(status, http.STATUS_CODES[status] ?? 'Error', [
        'content-type',
        'text/plain; charset=utf-8',
        'content-length',
        String(body.length),
        ...(close ? ['connection', 'close'] : []),
      ]),
    );
    const full = !this.stream.write(body);
    this.stream.uncork();
    if (close) return this.end(false);
    this.pending = rest;
    // A caller that does not read its answers waits before the next request is read.
    if (!full) return this.next();
    this.stream.pause();
    this.stream.once('drain', () => {
      if (this.done) return;
      this.stream.resume();
      this.next();
    });
  }

  /**
   * The tunnel ends: `abort` resets both sides (an exchange was cut short), otherwise both
   * are closed cleanly after what was written.
   */
  private end(abort: boolean): void {
    if (this.spliced || (this.done && this.stream.destroyed && this.app.destroyed)) return;
    const first = !this.done;
    this.done = true;
    // An exchange cut short is recorded as what the caller got: a failure.
    if (this.exchange) this.finish(this.exchange, this.answer.answered ? this.answer.status : 502);
    this.exchange = undefined;
    // Nothing more is read from the caller; what it still sends is drained, not buffered.
    this.stream.off('data', this.onData);
    this.stream.resume();
    this.stream.setTimeout(0);
    if (abort) {
      this.stream.destroy();
      this.app.destroy();
    } else {
      if (!this.stream.writableEnded) this.stream.end();
      if (!this.app.writableEnded) this.app.end();
      this.app.resume();
    }
    if (first) this.ended();
  }
}
