import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from '@causeway/discovery';
import {
  BodyTracker,
  HeadScan,
  normalizePath,
  parseRequestHead,
  parseResponseHead,
  writeRequestHead,
  writeResponseHead,
  type RequestHead,
} from '@causeway/http';
import type { OutboundProxy, TunnelLease } from './outbound.ts';
import { resolveDestination, type Destination } from './routing.ts';

/** A request's head and body are kept up to this size for a resend on another endpoint. */
const REPLAY_LIMIT = 65_536;
/** Methods that may be sent again when their tunnel failed before any answer (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/**
 * Fields the next hop must not see: a proxy request's hop-by-hop ones, and any an app could
 * pass off as what a sidecar states (the caller's identity, the retry marker; underscore
 * spellings too, which CGI-style servers merge).
 */
const DROPPED_FIELDS = new Set([
  'proxy-connection',
  'proxy-authorization',
  'x-forwarded-client-cert',
  'x_forwarded_client_cert',
  'x-causeway-upstream-failure',
  'x_causeway_upstream_failure',
]);
const EMPTY = Buffer.alloc(0);
/** After the sidecar closes an app connection, how long the app has to close its side. */
const CLOSE_GRACE_MS = 5_000;

/** One request in flight on the app's connection. */
interface Exchange {
  readonly head: RequestHead;
  readonly destination: Destination;
  readonly config: ProxyConfig;
  readonly authority: string;
  readonly path: string;
  readonly started: bigint;
  /** The final answer's status (0 until its head came). */
  status: number;
  lease: TunnelLease;
  readonly body: BodyTracker;
  /** Head and body bytes sent so far, while they fit the replay limit (then undefined). */
  kept: Buffer[] | undefined;
  keptBytes: number;
  requestDone: boolean;
  /** Targets tried for this request, and how often it was sent again. */
  readonly tried: Set<string>;
  retries: number;
  /** Response bytes not parsed yet, while its head is incomplete. */
  responseHead: Buffer;
  readonly responseScan: HeadScan;
  responseBody: BodyTracker | undefined;
  /** How the answer's body ends (`close`: with the connection). */
  responseFraming: string;
  responseKeepAlive: boolean;
  /** A byte of the answer went to the app: no resend from here on. */
  answered: boolean;
}

/**
 * The app's plain HTTP/1.1 connection to the outbound port, framed by Causeway itself (the
 * strict parser of `@causeway/http`). Each request head is read, its destination resolved
 * and its path normalized; a request to an L4 service port goes into that port's tunnel for
 * this connection (one HBONE stream per destination, kept while the connection lives), its
 * body and the answer pass through as bytes, with only their framing followed. Requests are
 * handled one at a time: a pipelined request waits until the answer before it is complete.
 * The first request to an L7 port hands the connection, at that request boundary, to the
 * per-request path (`handOff`), for good.
 */
export class OutboundH1Connection {
  private pending: Buffer;
  private readonly scan = new HeadScan();
  private exchange: Exchange | undefined;
  /** A step that waits (a tunnel being opened) is under way: incoming bytes wait in `pending`. */
  private busy = false;
  private done = false;
  private stopping = false;
  /** The app sent its FIN. */
  private appEnded = false;

  constructor(
    private readonly socket: Duplex,
    early: Buffer,
    private readonly proxy: OutboundProxy,
    private readonly handOff: (socket: Duplex, buffered: Buffer) => void,
  ) {
    this.pending = early;
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('end', this.onEnd);
    this.next();
  }

  /** The sidecar stops: an idle connection closes now, a busy one after its answer. */
  stop(): void {
    if (this.done) return;
    this.stopping = true;
    if (!this.exchange && !this.busy) this.close();
  }

  private readonly onData = (chunk: Buffer): void => {
    // Closed by the sidecar: what the app still sends is dropped, never kept.
    if (this.done) return;
    const exchange = this.exchange;
    if (exchange && !exchange.requestDone && !this.busy) return this.sendBody(exchange, chunk);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    // A pipelined request waits for the answer to the one before it.
    if (exchange || this.busy) this.socket.pause();
    else this.next();
  };

  private readonly onEnd = (): void => {
    // The app is done sending (a half close): the answer in flight still goes back to it,
    // then the connection closes.
    this.appEnded = true;
    if (!this.exchange && !this.busy) this.close();
  };

  private readonly onClose = (): void => {
    this.done = true;
    // The app left in the middle of an exchange: its tunnel cannot carry another.
    this.exchange?.lease.release(true);
    this.exchange = undefined;
  };

  /** Reads the next request head from what the app sent, if it is all there. */
  private next(): void {
    if (this.done || this.busy || this.exchange || this.pending.length === 0) return;
    const parsed = parseRequestHead(this.pending, 0, undefined, this.scan);
    if (parsed.kind === 'incomplete') return;
    if (parsed.kind === 'error') return this.refuse(parsed.status, `${parsed.code}: ${parsed.reason}`, true);
    this.begin(parsed, parsed.end).catch((error: unknown) => this.crashed(error));
  }

  /** A bug, not bad input: the exchange ends with 500 (or a cut connection) and is logged. */
  private crashed(error: unknown): void {
    this.busy = false;
    this.proxy.log('warn', 'HTTP/1.1 exchange failed', { err: String((error as Error)?.stack ?? error) });
    if (this.exchange?.answered) return void this.socket.destroy();
    this.exchange?.lease.release(true);
    this.refuse(500, 'the sidecar failed on this request', true);
  }

  private async begin(head: RequestHead, end: number): Promise<void> {
    const raw = this.pending.subarray(0, end);
    const config = this.proxy.config();
    // A refusal keeps the connection only when the request had no body and the app keeps it.
    const mustClose = head.body.type !== 'none' || !head.keepAlive;
    // A CONNECT, or anything the per-request path handles, goes there with every byte intact.
    if (head.method === 'CONNECT') return this.giveUp();
    if (!config) return this.refuse(503, 'no config from the controller yet', mustClose, end);
    let authority = head.host ?? '';
    let path = head.target;
    if (/^http:\/\//i.test(path)) {
      // Absolute form: the app uses this sidecar as its HTTP proxy.
      const slash = path.indexOf('/', 7);
      authority = path.slice(7, slash < 0 ? undefined : slash);
      path = slash < 0 ? '/' : path.slice(slash);
    } else if (!path.startsWith('/')) {
      return this.refuse(400, `the request target ${JSON.stringify(path.slice(0, 64))} is not a path`, true);
    }
    const destination = resolveDestination(config, authority, this.proxy.namespace);
    if (!destination) return this.refuse(404, `no service ${authority} in the clusterset`, mustClose, end);
    const normalized = normalizePath(path, this.proxy.pathNormalization);
    if (!normalized.ok) return this.refuse(400, `${normalized.code}: ${normalized.reason}`, mustClose, end);
    const { service } = destination;
    if (this.proxy.modeOf(config, service.namespace, service.name, destination.port) === 'L7')
      return this.giveUp();
    // The head as the app sent it, unless the target or a proxy field must change.
    let headers = head.headers;
    const absolute = path !== head.target;
    if (absolute || headers.some((value, index) => index % 2 === 0 && DROPPED_FIELDS.has(value))) {
      const kept: string[] = [];
      for (let k = 0; k < headers.length; k += 2)
        if (!DROPPED_FIELDS.has(headers[k]!)) kept.push(headers[k]!, headers[k + 1]!);
      // An absolute-form target names the host: Host says the same (RFC 9112 §3.2.2).
      if (absolute) {
        const at = kept.findIndex((name, index) => index % 2 === 0 && name === 'host');
        if (at >= 0) kept[at + 1] = authority;
        else kept.unshift('host', authority);
      }
      headers = kept;
    }
    const out =
      headers === head.headers && normalized.target === head.target
        ? raw
        : writeRequestHead(head.method, normalized.target, headers);
    this.busy = true;
    this.socket.pause();
    const lease = await this.proxy.acquireTunnel(config, destination, new Set());
    this.busy = false;
    if (this.done) {
      if (typeof lease === 'object') lease.release(true);
      return;
    }
    if (lease === 'l7') return this.giveUp();
    if (typeof lease === 'string') return this.refuse(503, lease, mustClose, end);
    this.pending = this.pending.subarray(end);
    const body = new BodyTracker(head.body);
    const empty = body.feed(EMPTY, 0);
    const exchange: Exchange = {
      head,
      destination,
      config,
      authority,
      path: normalized.path,
      started: process.hrtime.bigint(),
      status: 0,
      lease,
      body,
      kept: [out],
      keptBytes: out.length,
      // No body, or `Content-Length: 0`: the request is complete with its head.
      requestDone: 'done' in empty && empty.done,
      tried: new Set([lease.target.key]),
      retries: 0,
      responseHead: EMPTY,
      responseScan: new HeadScan(),
      responseBody: undefined,
      responseFraming: 'none',
      responseKeepAlive: true,
      answered: false,
    };
    this.exchange = exchange;
    this.watch(exchange);
    lease.write(out);
    const rest = this.pending;
    this.pending = EMPTY;
    if (!exchange.requestDone && rest.length > 0) this.sendBody(exchange, rest);
    else if (rest.length > 0) this.pending = rest;
    this.socket.resume();
  }

  /** Body bytes from the app: as far as the request's framing goes, into its tunnel. */
  private sendBody(exchange: Exchange, chunk: Buffer): void {
    const progress = exchange.body.feed(chunk, 0);
    if ('error' in progress) {
      if (!exchange.answered) return this.refuse(progress.error.status, progress.error.reason, true);
      return void this.socket.destroy();
    }
    const body = progress.consumed === chunk.length ? chunk : chunk.subarray(0, progress.consumed);
    if (exchange.kept) {
      exchange.keptBytes += body.length;
      if (exchange.keptBytes > REPLAY_LIMIT) exchange.kept = undefined;
      else exchange.kept.push(body);
    }
    if (body.length > 0 && !exchange.lease.write(body)) {
      // The tunnel is full: the app waits.
      this.socket.pause();
      exchange.lease.once('drain', () => this.socket.resume());
    }
    if (progress.done) {
      exchange.requestDone = true;
      if (progress.consumed < chunk.length) {
        this.pending = chunk.subarray(progress.consumed);
        this.socket.pause();
      }
    }
  }

  /** What the exchange's tunnel sends back is its answer; the tunnel's end may fail it. */
  private watch(exchange: Exchange): void {
    const lease = exchange.lease;
    lease.attach({
      data: (chunk) => this.answer(exchange, chunk),
      end: (error) => {
        if (this.exchange !== exchange || exchange.lease !== lease) return;
        if (!exchange.answered)
          return void this.failed(exchange, error ?? 'the tunnel closed unanswered').catch(
            (failure: unknown) => this.crashed(failure),
          );
        // An answer framed by the end of the connection ends here; any other is cut short.
        if (exchange.responseBody && exchange.responseFraming === 'close')
          return this.finish(exchange, false);
        this.socket.destroy();
      },
    });
  }

  /** Bytes of the answer: the head parsed (interim ones passed on), the body followed. */
  private answer(exchange: Exchange, chunk: Buffer): void {
    // A head and its body that came together leave in one write.
    this.socket.cork();
    try {
      this.passAnswer(exchange, chunk);
    } finally {
      this.socket.uncork();
    }
  }

  private passAnswer(exchange: Exchange, chunk: Buffer): void {
    let data = chunk;
    while (!exchange.responseBody) {
      const buffer = exchange.responseHead.length === 0 ? data : Buffer.concat([exchange.responseHead, data]);
      const parsed = parseResponseHead(buffer, 0, exchange.head.method, undefined, exchange.responseScan);
      if (parsed.kind === 'incomplete') {
        exchange.responseHead = buffer;
        return;
      }
      exchange.responseHead = EMPTY;
      if (parsed.kind === 'error') {
        exchange.lease.release(true);
        if (!exchange.answered) return this.refuse(502, `the app answered badly: ${parsed.reason}`, true);
        return void this.socket.destroy();
      }
      exchange.answered = true;
      exchange.kept = undefined;
      if (parsed.tunnel) {
        // 101 Switching Protocols: from here on the connection is the tunnel's, both ways.
        return this.upgrade(exchange, buffer);
      }
      this.socket.write(buffer.subarray(0, parsed.end));
      data = buffer.subarray(parsed.end);
      if (parsed.interim) continue;
      exchange.responseKeepAlive = parsed.keepAlive;
      exchange.responseFraming = parsed.body.type;
      exchange.status = parsed.status;
      exchange.responseBody = new BodyTracker(parsed.body, undefined, 'response');
    }
    const progress = exchange.responseBody.feed(data, 0);
    if ('error' in progress) {
      exchange.lease.release(true);
      return void this.socket.destroy();
    }
    if (progress.consumed > 0) {
      const body = progress.consumed === data.length ? data : data.subarray(0, progress.consumed);
      if (!this.socket.write(body)) {
        exchange.lease.pause();
        this.socket.once('drain', () => {
          if (!exchange.lease.closed) exchange.lease.resume();
        });
      }
    }
    if (progress.done) {
      // More than the framing said: the tunnel cannot carry another exchange.
      if (progress.consumed < data.length) exchange.lease.release(true);
      this.finish(exchange, true);
    }
  }

  /** The answer is complete: the tunnel back to the pool, then the next request or the end. */
  private finish(exchange: Exchange, framed: boolean): void {
    this.exchange = undefined;
    this.record(exchange, exchange.status);
    const reusable = framed && exchange.head.keepAlive && exchange.responseKeepAlive && exchange.requestDone;
    if (reusable) this.proxy.returnTunnel(exchange.lease);
    else exchange.lease.release(!exchange.requestDone);
    if (!reusable || this.stopping || this.appEnded) return this.close();
    this.socket.resume();
    this.next();
  }

  private record(exchange: Exchange, status: number): void {
    this.proxy.recordRequest({
      method: exchange.head.method,
      authority: exchange.authority,
      path: exchange.path,
      status,
      seconds: Number(process.hrtime.bigint() - exchange.started) / 1e9,
      cluster: exchange.lease.target.cluster,
      service: exchange.destination.service.hostname,
      headers: exchange.head.headers,
    });
  }

  /**
   * The tunnel failed before any byte of the answer. The request goes to another endpoint
   * when it may be sent again (an idempotent method, all of it kept); otherwise the app
   * gets 502 and the connection closes.
   */
  private async failed(exchange: Exchange, why: string): Promise<void> {
    if (
      exchange.answered ||
      !exchange.kept ||
      !IDEMPOTENT.has(exchange.head.method) ||
      exchange.retries >= 2
    ) {
      this.record(exchange, 502);
      if (!exchange.answered) return this.refuse(502, `upstream reset: ${why}`, true);
      return void this.socket.destroy();
    }
    this.busy = true;
    this.socket.pause();
    // A tunnel cut under a request (a new policy, a stopping peer) says nothing against its
    // target: the first resend may go there again; a second one goes elsewhere.
    exchange.retries++;
    const exclude = exchange.retries > 1 ? exchange.tried : new Set<string>();
    const opened = await this.proxy.acquireTunnel(exchange.config, exchange.destination, exclude);
    this.busy = false;
    if (this.done) {
      if (typeof opened === 'object') opened.release(true);
      return;
    }
    if (opened === 'l7') {
      // The port needs L7 there now: the request, as sent so far, goes the per-request way.
      this.exchange = undefined;
      this.pending = Buffer.concat([...exchange.kept, this.pending]);
      return this.giveUp();
    }
    if (typeof opened !== 'object') {
      this.record(exchange, 503);
      return this.refuse(503, `upstream connect error: ${why}`, true);
    }
    exchange.tried.add(opened.target.key);
    exchange.lease.release(true);
    exchange.lease = opened;
    exchange.responseHead = EMPTY;
    exchange.responseScan.reset();
    this.watch(exchange);
    for (const part of exchange.kept) opened.write(part);
    this.socket.resume();
  }

  /** After a 101: what the app sends and what the server sends pass untouched, both ways. */
  private upgrade(exchange: Exchange, buffered: Buffer): void {
    this.exchange = undefined;
    this.record(exchange, 101);
    exchange.lease.attach(undefined);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.write(buffered);
    const rest = this.pending;
    this.pending = EMPTY;
    exchange.lease.splice(this.socket, rest);
  }

  /** Hands the connection, with every byte not yet handled, to the per-request path. */
  private giveUp(): void {
    this.done = true;
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('end', this.onEnd);
    const buffered = this.pending;
    this.pending = EMPTY;
    this.handOff(this.socket, buffered);
  }

  /**
   * An answer of the proxy's own; `close`: the connection cannot carry another request;
   * `consumed`: the bytes of the refused request (a head without a body) to drop.
   */
  private refuse(status: number, message: string, close: boolean, consumed = 0): void {
    const body = Buffer.from(`${message}\n`);
    this.socket.write(
      writeResponseHead(status, http.STATUS_CODES[status] ?? 'Error', [
        'content-type',
        'text/plain; charset=utf-8',
        'content-length',
        String(body.length),
        ...(close || this.stopping ? ['connection', 'close'] : []),
      ]),
    );
    this.socket.write(body);
    this.exchange?.lease.release(true);
    this.exchange = undefined;
    if (close || this.stopping) return this.close();
    // The refused request had no body: the next one may follow.
    this.pending = this.pending.subarray(consumed);
    this.socket.resume();
    this.next();
  }

  private close(): void {
    this.done = true;
    this.exchange?.lease.release(true);
    this.exchange = undefined;
    this.socket.resume();
    this.socket.end();
    // An app that keeps sending after our FIN is cut off.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}
