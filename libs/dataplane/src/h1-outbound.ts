import { OVERFLOW_HEADER, overflowOf } from './circuit-breaker.ts';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { DataPlaneMode, ProxyConfig } from '@causeway/discovery';
import {
  BodyTracker,
  HeadScan,
  normalizePath,
  parseRequestHead,
  writeRequestHead,
  writeResponseHead,
  type RequestHead,
} from '@causeway/http';
import { H1Answer, type AnswerStep } from './h1-answer.ts';
import type { LeaseHandler, OutboundProxy, TunnelLease } from './outbound.ts';
import { abortStatus, INJECTED_FAULT } from './faults.ts';
import { fieldsOf, grpcStatusForHttp } from './http-util.ts';
import { overflowMessage } from './circuit-breaker.ts';
import { resultOfAnswer } from './outliers.ts';
import { IDEMPOTENT, type PolicyBundle, type RequestPolicy } from './request-policy.ts';
import { ATTEMPT_HEADER } from './retries.ts';
import {
  resolveDestination,
  routedDestination,
  routeRequest,
  type Destination,
  type RequestFacts,
  type RoutedBackend,
} from './routing.ts';

/** A request's head and body are kept up to this size for a resend on another endpoint. */
const REPLAY_LIMIT = 65_536;
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
  'x-causeway-attempt',
  'x_causeway_attempt',
]);
const EMPTY = Buffer.alloc(0);
/** How `acquireTunnel` says that no endpoint it tried could be reached. */
const CONNECT_ERROR = 'upstream connect error';
/** After the sidecar closes an app connection, how long the app has to close its side. */
const CLOSE_GRACE_MS = 5_000;

/** One request in flight on the app's connection. */
interface Exchange {
  readonly head: RequestHead;
  /** The service port the request goes to (after the mesh routes, in L7). */
  readonly destination: Destination;
  readonly mode: DataPlaneMode;
  readonly config: ProxyConfig;
  readonly authority: string;
  readonly path: string;
  readonly started: bigint;
  lease: TunnelLease;
  /**
   * The balancer's epoch when its tunnel was chosen: the tunnel is kept for the next request
   * only if it is unchanged (NOT_STICKY: not the balancer's first choice).
   */
  epoch: number;
  /** The request body's framing, followed (none: the request ended with its head). */
  readonly body: BodyTracker | undefined;
  /** Head and body bytes sent so far, while they fit the replay limit (then undefined). */
  kept: Buffer[] | undefined;
  keptBytes: number;
  requestDone: boolean;
  /** Targets tried for this request (from its first resend on), and how often it was sent again. */
  tried: Set<string> | undefined;
  retries: number;
  /** The request's TrafficPolicy (faults, retries, time limits, circuit breaker), when one applies. */
  readonly policy: RequestPolicy | undefined;
  /** The head's target and fields as sent (without the attempt header), for each try's head. */
  readonly target: string;
  readonly fields: readonly string[];
  /** The try in flight (1: the first). */
  attempt: number;
  /** The try's own time limit. */
  perTry: NodeJS.Timeout | undefined;
}

/** A request under a TrafficPolicy before its first try has a tunnel. */
interface PolicyStart {
  readonly head: RequestHead;
  /** Where its head ends in `pending`. */
  readonly end: number;
  readonly mustClose: boolean;
  readonly config: ProxyConfig;
  readonly destination: Destination;
  readonly authority: string;
  readonly path: string;
  readonly target: string;
  readonly fields: readonly string[];
  /** The head as the app sent it, when it goes on unchanged. */
  readonly raw: Buffer | undefined;
  readonly started: bigint;
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

/**
 * The head of one try: the request's, with `x-causeway-attempt` when retries are on (added
 * to the head as the app sent it when that goes on unchanged, else written anew).
 */
function tryHead(
  request: {
    readonly head: RequestHead;
    readonly target: string;
    readonly fields: readonly string[];
    readonly raw?: Buffer;
  },
  attempt: number | undefined,
): Buffer {
  const { raw } = request;
  if (raw && (attempt === undefined || raw.subarray(-4).equals(HEAD_END)))
    return attempt === undefined
      ? raw
      : Buffer.concat([raw.subarray(0, -2), Buffer.from(`${ATTEMPT_HEADER}: ${attempt}\r\n\r\n`, 'latin1')]);
  return writeRequestHead(
    request.head.method,
    request.target,
    attempt === undefined ? request.fields : [...request.fields, ATTEMPT_HEADER, String(attempt)],
  );
}

/**
 * The tunnel an app connection keeps between its requests while they name the same
 * authority and the balancer would choose as it did (L4).
 */
interface Sticky {
  readonly authority: string;
  readonly config: ProxyConfig;
  /** The balancer's epoch when the tunnel was chosen (see `OutboundProxy.balancerEpoch`). */
  readonly epoch: number;
  readonly destination: Destination;
  readonly mode: DataPlaneMode;
  readonly lease: TunnelLease;
}

/** The epoch of an exchange whose tunnel is never kept for the next request. */
const NOT_STICKY = -1;

/** No target excluded. */
const NONE: ReadonlySet<string> = new Set();

/** Whether a flat field list holds a field the next hop must not see. */
function hasDroppedField(headers: readonly string[]): boolean {
  for (let k = 0; k < headers.length; k += 2) if (DROPPED_FIELDS.has(headers[k]!)) return true;
  return false;
}

/**
 * The app's plain HTTP/1.1 connection to the outbound port, framed by Causeway itself (the
 * strict parser of `@causeway/http`). Each request head is read, its destination resolved
 * and its path normalized; on an L7 port the mesh routes then choose the backend. The
 * request borrows a pooled HBONE tunnel to the endpoint the balancer picks (marked as framed:
 * an L7 port at the other end authorizes each request in it), its body and the answer pass
 * through as bytes, with only their framing followed, and the tunnel goes back to the pool.
 * Requests are handled one at a time: a pipelined request waits until the answer before it
 * is complete. A CONNECT, or a port whose server side cannot take framed exchanges (an
 * HTTP/2 app), hands the connection at that request boundary to the per-request path
 * (`handOff`), for good.
 */
export class OutboundH1Connection {
  private pending: Buffer;
  private readonly scan = new HeadScan();
  private exchange: Exchange | undefined;
  /** The answer to the exchange in flight, read as it comes. */
  private readonly answer: H1Answer;
  /** The tunnel kept from the last request (L4), for the next one to the same authority. */
  private sticky: Sticky | undefined;
  /** What this connection's tunnels tell it (one handler, whichever tunnel is in use). */
  private readonly tunnel: LeaseHandler = {
    data: (chunk) => this.onAnswer(chunk),
    end: (error) => this.onTunnelEnd(error),
  };
  /** When the head being received started (0: none is incomplete). */
  private headSince = 0;
  /** A step that waits (a tunnel being opened) is under way: incoming bytes wait in `pending`. */
  private busy = false;
  private done = false;
  private stopping = false;
  /** The app sent its FIN. */
  private appEnded = false;
  /** The policy of a request under way before its exchange exists (closed if the connection goes). */
  private starting: RequestPolicy | undefined;

  constructor(
    private readonly socket: Duplex,
    early: Buffer,
    private readonly proxy: OutboundProxy,
    private readonly handOff: (socket: Duplex, buffered: Buffer) => void,
  ) {
    this.pending = early;
    this.answer = new H1Answer(socket);
    if (socket instanceof net.Socket) socket.setTimeout(proxy.timeouts.idleMs, this.onIdle);
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
    if (exchange && !exchange.requestDone && !this.busy) return void this.sendBody(exchange, chunk);
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
    // A request waiting for a place, or for its first tunnel, gives it up.
    this.starting?.close();
    // The app left in the middle of an exchange: its tunnel cannot carry another.
    if (this.exchange) {
      this.endPolicy(this.exchange);
      drop(this.exchange.lease, true);
    }
    this.exchange = undefined;
    this.unstick();
  };

  /** Nothing came for a while: an idle connection closes, a head that never completed gets 408. */
  private readonly onIdle = (): void => {
    // Waiting for an answer is not idleness (how long an answer may take is the app's business).
    if (this.done || this.exchange || this.busy) return;
    if (this.pending.length > 0) return this.refuse(408, 'the request head did not complete in time', true);
    this.close();
  };

  /** Reads the next request head from what the app sent, if it is all there. */
  private next(): void {
    if (this.done || this.busy || this.exchange || this.pending.length === 0) return;
    const parsed = parseRequestHead(this.pending, 0, undefined, this.scan);
    if (parsed.kind === 'incomplete') {
      // A head sent a byte at a time, slower than any client would: refused.
      if (this.headSince === 0) this.headSince = Date.now();
      else if (Date.now() - this.headSince > this.proxy.timeouts.requestHeadMs)
        this.refuse(408, 'the request head did not complete in time', true);
      return;
    }
    this.headSince = 0;
    if (parsed.kind === 'error') return this.refuse(parsed.status, `${parsed.code}: ${parsed.reason}`, true);
    this.begin(parsed, parsed.end).catch((error: unknown) => this.crashed(error));
  }

  /** A bug, not bad input: the exchange ends with 500 (or a cut connection) and is logged. */
  private crashed(error: unknown): void {
    this.busy = false;
    this.starting?.close();
    this.proxy.log('warn', 'HTTP/1.1 exchange failed', { err: String((error as Error)?.stack ?? error) });
    if (this.exchange && this.answer.answered) return void this.socket.destroy();
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
    if (path.charCodeAt(0) !== 0x2f) {
      if (!/^http:\/\//i.test(path))
        return this.refuse(
          400,
          `the request target ${JSON.stringify(path.slice(0, 64))} is not a path`,
          true,
        );
      // Absolute form: the app uses this sidecar as its HTTP proxy.
      const slash = path.indexOf('/', 7);
      authority = path.slice(7, slash < 0 ? undefined : slash);
      path = slash < 0 ? '/' : path.slice(slash);
    }
    const normalized = normalizePath(path, this.proxy.pathNormalization);
    // The tunnel the last request used, kept while the app names the same authority (L4). A
    // new config, or a target's failure or return anywhere since, keeps it only where its
    // target is still a first choice for this service: another service's ejection ending
    // does not move it.
    let sticky =
      this.sticky?.authority === authority && this.sticky.epoch !== NOT_STICKY ? this.sticky : undefined;
    let destination: Destination;
    let mode: DataPlaneMode;
    if (sticky?.config === config && sticky.epoch === this.proxy.balancerEpoch)
      ({ destination, mode } = sticky);
    else {
      const found = resolveDestination(config, authority, this.proxy.namespace);
      if (!found) return this.refuse(404, `no service ${authority} in the clusterset`, mustClose, end);
      destination = found;
      const { service } = destination;
      mode = this.proxy.modeOf(config, service.namespace, service.name, destination.port);
      if (sticky && !(mode === 'L4' && this.proxy.keepsTarget(config, destination, sticky.lease.target)))
        sticky = undefined;
    }
    if (!normalized.ok) return this.refuse(400, `${normalized.code}: ${normalized.reason}`, mustClose, end);
    // L7: the mesh routes choose the backend; the server side authorizes each request.
    let policyFor: { routed: RoutedBackend; bundle: PolicyBundle } | undefined;
    let facts: RequestFacts | undefined;
    const addressed = destination;
    if (mode === 'L7') {
      facts = { method: head.method, path: normalized.target, headers: fieldsOf(head.headers), grpc: false };
      const routed = routeRequest(config, destination, facts);
      if ('status' in routed) return this.refuse(routed.status, routed.reason, mustClose, end);
      const chosen = routedDestination(config, destination, routed);
      if (!chosen)
        return this.refuse(503, `no ready endpoint of ${routed.name}.${routed.namespace}`, mustClose, end);
      const bundle = this.proxy.policyBundle(config, destination, routed);
      if (bundle.perRequest) policyFor = { routed, bundle };
      destination = chosen;
    }
    // The head as the app sent it, unless the target or a proxy field must change.
    let headers = head.headers;
    const absolute = path !== head.target;
    if (absolute || hasDroppedField(headers)) {
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
    // Faults, retries, time limits, a circuit breaker: each try is made here, one by one.
    if (policyFor) {
      const policy: RequestPolicy = this.proxy.requestPolicy(
        config,
        // The policies are the addressed service's (and its route's): as on the per-request path.
        addressed,
        policyFor.routed,
        facts!,
        // Sent again only while all of it is kept (before its first tunnel, it is all unread).
        () => this.exchange?.policy !== policy || this.exchange.kept !== undefined,
        policyFor.bundle,
      );
      await this.beginTries(policy, {
        head,
        end,
        mustClose,
        config,
        destination,
        authority,
        path: normalized.path,
        target: normalized.target,
        fields: headers,
        raw: headers === head.headers && normalized.target === head.target ? raw : undefined,
        started: process.hrtime.bigint(),
      });
      return;
    }
    const out =
      headers === head.headers && normalized.target === head.target
        ? raw
        : writeRequestHead(head.method, normalized.target, headers);
    let lease: TunnelLease | 'l7' | string;
    // (A kept tunnel was chosen in this epoch too: `sticky` says so.)
    let epoch = this.proxy.balancerEpoch;
    if (sticky && mode === 'L4' && !sticky.lease.closed) lease = sticky.lease;
    else {
      this.unstick();
      this.busy = true;
      this.socket.pause();
      lease = await this.proxy.acquireTunnel(config, destination, NONE);
      this.busy = false;
      if (this.done) {
        if (typeof lease === 'object') lease.release(true);
        return;
      }
      if (lease === 'l7') return this.giveUp();
      if (typeof lease === 'string') return this.refuse(503, lease, mustClose, end);
      // A fallback (the balancer's pick refused it) is not kept: the next request asks again.
      if (lease.fallback) epoch = NOT_STICKY;
    }
    this.takeSticky();
    this.pending = this.pending.subarray(end);
    const framed = head.body.type !== 'none' && !(head.body.type === 'length' && head.body.length === 0);
    const exchange: Exchange = {
      head,
      destination,
      mode,
      config,
      authority,
      path: normalized.path,
      started: process.hrtime.bigint(),
      lease,
      epoch,
      body: framed ? new BodyTracker(head.body) : undefined,
      kept: [out],
      keptBytes: out.length,
      // No body, or `Content-Length: 0`: the request is complete with its head.
      requestDone: !framed,
      tried: undefined,
      retries: 0,
      policy: undefined,
      target: normalized.target,
      fields: headers,
      attempt: 1,
      perTry: undefined,
    };
    this.exchange = exchange;
    this.answer.start(head.method);
    this.answer.judge = undefined;
    this.watch(exchange);
    lease.write(out);
    this.sendPending(exchange);
  }

  /**
   * The first try of a request under a TrafficPolicy: a place under its circuit breaker,
   * then its faults (an abort may be retried), then a tunnel (a refused one may be retried);
   * then the exchange runs as any other, its answer's head judged before it is passed on.
   * Says the exchange, or undefined when the app already has its answer.
   */
  private async beginTries(policy: RequestPolicy, start: PolicyStart): Promise<void> {
    // A tunnel kept from an L4 request before goes back: this one is tried on its own.
    this.unstick();
    this.starting = policy;
    try {
      await this.firstTry(policy, start);
    } finally {
      // (A pipelined request after this one may have started its own already.)
      if (this.starting === policy) this.starting = undefined;
    }
  }

  private async firstTry(policy: RequestPolicy, start: PolicyStart): Promise<void> {
    this.busy = true;
    this.socket.pause();
    const refuse = (status: number, message: string, headers?: readonly string[]): undefined => {
      policy.close();
      this.busy = false;
      this.recordRefusal(start, status);
      this.refuse(status, message, start.mustClose, start.end, headers);
      return undefined;
    };
    const admission = policy.admit();
    const admitted = admission instanceof Promise ? await admission : admission;
    if (this.done || admitted === 'gone') return void policy.close();
    if (admitted === 'timed-out') {
      policy.timedOut('request');
      return refuse(504, 'upstream request timeout');
    }
    if (admitted !== true) return refuse(503, overflowMessage(admitted, policy.breakerLimits!.policy));
    const tried = await this.nextTry(policy, start, 1, refuse);
    if (!tried) return;
    this.busy = false;
    this.pending = this.pending.subarray(start.end);
    const framed =
      start.head.body.type !== 'none' && !(start.head.body.type === 'length' && start.head.body.length === 0);
    const exchange: Exchange = {
      head: start.head,
      destination: start.destination,
      mode: 'L7',
      config: start.config,
      authority: start.authority,
      path: start.path,
      started: start.started,
      lease: tried.lease,
      epoch: NOT_STICKY,
      body: framed ? new BodyTracker(start.head.body) : undefined,
      kept: [tried.out],
      keptBytes: tried.out.length,
      requestDone: !framed,
      tried: undefined,
      retries: 0,
      policy,
      target: start.target,
      fields: start.fields,
      attempt: tried.attempt,
      perTry: undefined,
    };
    this.exchange = exchange;
    this.startTry(exchange);
    tried.lease.write(tried.out);
    policy.onExpiry(() => this.onExpired(exchange));
    this.sendPending(exchange);
    // Out of time while the tunnel was being had: 504 now.
    if (policy.expired) this.onExpired(exchange);
  }

  /**
   * Makes try `attempt` ready: its fault (a delay waited; an abort answered, or retried as
   * the policy allows), its head, a tunnel to the endpoint the balancer picks (one that
   * cannot be had is a connect failure the policy may retry). Undefined: the app has its
   * answer (`refuse` gave it), or the connection is gone.
   */
  private async nextTry(
    policy: RequestPolicy,
    request: Pick<PolicyStart, 'head' | 'config' | 'destination' | 'target' | 'fields'> & { raw?: Buffer },
    attempt: number,
    refuse: (status: number, message: string, headers?: readonly string[]) => undefined,
  ): Promise<{ lease: TunnelLease; out: Buffer; attempt: number } | undefined> {
    for (; ; attempt++) {
      if (policy.expired) {
        policy.timedOut('request');
        return refuse(504, 'upstream request timeout');
      }
      const fault = policy.fault();
      if (fault && fault.delayMs > 0) {
        await policy.pause(fault.delayMs);
        if (this.done) return void policy.close();
        if (policy.expired) {
          policy.timedOut('request');
          return refuse(504, 'upstream request timeout');
        }
      }
      if (fault?.abort) {
        const status = abortStatus(fault.abort, grpcStatusForHttp).http;
        // An injected abort is a failed try like any other: retries may mask it.
        if (policy.retryAnswer(status, '')) {
          await policy.nextTry(String(status));
          if (this.done) return void policy.close();
          continue;
        }
        return refuse(status, `fault injected by TrafficPolicy ${fault.policy}`, [INJECTED_FAULT, 'abort']);
      }
      const out = tryHead(request, policy.retry ? attempt : undefined);
      const lease = await this.proxy.acquireTunnel(request.config, request.destination, NONE);
      if (this.done) {
        if (typeof lease === 'object') lease.release(true);
        return void policy.close();
      }
      if (lease === 'l7') {
        // The port needs L7 there now and cannot take framed exchanges: the per-request
        // path takes the connection (and applies the policy again), with the request as
        // sent so far when a try of it was made already.
        policy.close();
        this.busy = false;
        const exchange = this.exchange;
        if (exchange?.policy === policy) {
          clearTimeout(exchange.perTry);
          this.exchange = undefined;
          this.pending = Buffer.concat([...exchange.kept!, this.pending]);
        }
        return void this.giveUp();
      }
      if (typeof lease === 'string') {
        // No endpoint could be reached: a connect failure the policy may retry. (A circuit
        // breaker's refusal, or no endpoint at all, is answered at once.)
        if (lease.startsWith(CONNECT_ERROR) && policy.retryAnswer(503, '', 'connect-failure')) {
          await policy.nextTry('connect-failure');
          if (this.done) return void policy.close();
          continue;
        }
        return refuse(503, lease);
      }
      // Out of time while the tunnel was being had: nothing is sent.
      if (policy.expired) {
        lease.release(true);
        policy.timedOut('request');
        return refuse(504, 'upstream request timeout');
      }
      return { lease, out, attempt };
    }
  }

  /** A try's tunnel answers to this connection; its answer's head is judged, its own timer runs. */
  private startTry(exchange: Exchange): void {
    const policy = exchange.policy!;
    this.answer.start(exchange.head.method);
    this.answer.judge = (status) => policy.retryAnswer(status, '');
    this.watch(exchange);
    this.armPerTry(exchange);
  }

  /** The try's own time limit starts (again). */
  private armPerTry(exchange: Exchange): void {
    const policy = exchange.policy!;
    clearTimeout(exchange.perTry);
    const perTryMs = policy.perTryMs();
    if (perTryMs !== undefined)
      exchange.perTry = setTimeout(() => {
        if (this.exchange !== exchange || this.answer.answered || this.busy) return;
        // (While the app is still sending its body, the slowness may well be the app's.)
        if (exchange.requestDone) policy.note(exchange.lease.target, 'reset');
        // A try that took too long counts as a 504 for retries.
        if (policy.retryAnswer(504, '')) return this.retry(exchange, 'per-try-timeout');
        policy.timedOut('per-try');
        this.refuseExchange(exchange, 504, 'upstream per-try timeout');
      }, perTryMs);
  }

  /** The request's time is up: a try not answered yet gets 504, an answer under way is cut. */
  private onExpired(exchange: Exchange): void {
    if (this.exchange !== exchange) return;
    // A retry or a resend is under way: it answers 504 when its wait ends.
    if (this.busy) return;
    if (this.answer.answered) {
      this.record(exchange, 504);
      this.endPolicy(exchange);
      return void this.socket.destroy();
    }
    exchange.policy!.timedOut('request');
    this.refuseExchange(exchange, 504, 'upstream request timeout');
  }

  /**
   * The try's answer (or its failure) is retried: its tunnel is dropped, the backoff
   * waited, and the request, as kept, sent on the next try's tunnel.
   */
  private retry(exchange: Exchange, reason: string): void {
    const policy = exchange.policy!;
    clearTimeout(exchange.perTry);
    drop(exchange.lease, true);
    this.busy = true;
    this.socket.pause();
    const refuse = (status: number, message: string, headers?: readonly string[]): undefined => {
      this.busy = false;
      if (this.exchange === exchange) this.refuseExchange(exchange, status, message, headers);
      else this.resumeAfterBusy();
      return undefined;
    };
    void (async () => {
      await policy.nextTry(reason);
      // The connection closed meanwhile.
      if (this.done || this.exchange !== exchange) {
        this.busy = false;
        return this.resumeAfterBusy();
      }
      const tried = await this.nextTry(policy, exchange, exchange.attempt + 1, refuse);
      if (!tried) return;
      if (this.done || this.exchange !== exchange) {
        tried.lease.release(true);
        this.busy = false;
        return this.resumeAfterBusy();
      }
      this.busy = false;
      exchange.attempt = tried.attempt;
      exchange.lease = tried.lease;
      exchange.kept![0] = tried.out;
      this.startTry(exchange);
      for (const part of exchange.kept!) tried.lease.write(part);
      // What of the body came meanwhile follows what was sent again.
      this.sendPending(exchange);
    })().catch((error: unknown) => this.crashed(error));
  }

  /** An answer of the sidecar's own to a request under a policy whose tries have begun. */
  private refuseExchange(
    exchange: Exchange,
    status: number,
    message: string,
    headers?: readonly string[],
  ): void {
    this.record(exchange, status);
    this.endPolicy(exchange);
    this.refuse(status, message, !(exchange.requestDone && exchange.head.keepAlive), 0, headers);
  }

  /** The request's policy is done with: its timers stop, its circuit breaker places go back. */
  private endPolicy(exchange: Exchange): void {
    clearTimeout(exchange.perTry);
    exchange.policy?.close();
  }

  /** Metrics and the access log for a request under a policy answered before any tunnel. */
  private recordRefusal(start: PolicyStart, status: number): void {
    this.proxy.recordRequest({
      mode: 'L7',
      method: start.head.method,
      authority: start.authority,
      path: start.path,
      status,
      seconds: Number(process.hrtime.bigint() - start.started) / 1e9,
      cluster: 'unknown',
      service: start.destination.service.hostname,
      headers: start.head.headers,
    });
  }

  /**
   * Bytes that came while the exchange was being set up: the rest of its body goes into the
   * tunnel, a pipelined request waits. The app is read from again unless the tunnel is full.
   */
  private sendPending(exchange: Exchange): void {
    const rest = this.pending;
    this.pending = EMPTY;
    if (!exchange.requestDone && rest.length > 0) {
      if (this.sendBody(exchange, rest)) return;
    } else if (rest.length > 0) this.pending = rest;
    this.socket.resume();
  }

  /** The kept tunnel, no longer kept (it is in use again, or going). */
  private takeSticky(): Sticky | undefined {
    const sticky = this.sticky;
    if (sticky) {
      this.sticky = undefined;
    }
    return sticky;
  }

  /** The kept tunnel (if any) goes back to the pool, for any connection's next request to its target. */
  private unstick(): void {
    const sticky = this.takeSticky();
    if (sticky && !sticky.lease.closed) this.proxy.returnTunnel(sticky.lease);
  }

  /**
   * Body bytes from the app: as far as the request's framing goes, into its tunnel. Says
   * whether the app must wait (the tunnel is full, or a pipelined request is next).
   */
  private sendBody(exchange: Exchange, chunk: Buffer): boolean {
    // Called only while the request is not done: it has a body.
    const progress = exchange.body!.feed(chunk, 0);
    if ('error' in progress) {
      if (!this.answer.answered) this.refuse(progress.error.status, progress.error.reason, true);
      else this.socket.destroy();
      return true;
    }
    const body = progress.consumed === chunk.length ? chunk : chunk.subarray(0, progress.consumed);
    if (exchange.kept) {
      exchange.keptBytes += body.length;
      if (exchange.keptBytes > REPLAY_LIMIT) exchange.kept = undefined;
      else exchange.kept.push(body);
    }
    let wait = false;
    if (body.length > 0 && !exchange.lease.write(body)) {
      // The tunnel is full: the app waits (while this exchange still uses it).
      wait = true;
      this.socket.pause();
      const lease = exchange.lease;
      lease.once('drain', () => {
        if (this.exchange === exchange && exchange.lease === lease) this.socket.resume();
      });
    }
    if (progress.done) {
      exchange.requestDone = true;
      if (progress.consumed < chunk.length) {
        // A pipelined request: it waits for this answer, after whatever came before it.
        const next = chunk.subarray(progress.consumed);
        this.pending = this.pending.length === 0 ? next : Buffer.concat([this.pending, next]);
        wait = true;
        this.socket.pause();
      }
    }
    return wait;
  }

  /** The exchange's tunnel answers to this connection from now on. */
  private watch(exchange: Exchange): void {
    exchange.lease.attach(this.tunnel);
  }

  /** The tunnel in use ended (`error`: why, for a failure). */
  private onTunnelEnd(error: string | undefined): void {
    const exchange = this.exchange;
    if (!exchange) {
      // The kept tunnel ended between requests: the next request opens another.
      if (this.sticky?.lease.closed) this.takeSticky();
      return;
    }
    if (!this.answer.answered)
      return void this.failed(exchange, error ?? 'the tunnel closed unanswered', error === undefined).catch(
        (failure: unknown) => this.crashed(failure),
      );
    // An answer framed by the end of the connection ends here; any other is cut short.
    if (this.answer.endedCleanly()) return this.finish(exchange, false);
    this.socket.destroy();
  }

  /** Bytes of the answer: passed on as they came, its head parsed and its body followed. */
  private onAnswer(chunk: Buffer): void {
    const exchange = this.exchange;
    if (!exchange) {
      // Bytes on the kept tunnel with no request out: out of step, it cannot be used again.
      const sticky = this.takeSticky();
      if (sticky) drop(sticky.lease, true);
      return;
    }
    // A head and its body that came together leave in one write.
    this.socket.cork();
    let step: AnswerStep;
    try {
      step = this.answer.feed(chunk);
    } finally {
      this.socket.uncork();
    }
    if (this.answer.answered) exchange.kept = undefined;
    // The answer has begun (an interim one counts: the app is sending its body now).
    if (exchange.perTry && (this.answer.answered || this.answer.interim)) {
      clearTimeout(exchange.perTry);
      exchange.perTry = undefined;
    }
    if (this.answer.backedUp) {
      const lease = exchange.lease;
      lease.pause();
      this.socket.once('drain', () => {
        if (!lease.closed && this.exchange === exchange) lease.resume();
      });
    }
    switch (step.kind) {
      case 'more':
        return;
      case 'error':
        drop(exchange.lease, true);
        if (!this.answer.answered) return this.refuse(502, `the app answered badly: ${step.reason}`, true);
        return void this.socket.destroy();
      case 'retry':
        // The policy retries this answer: nothing of it reached the app.
        exchange.policy!.note(exchange.lease.target, resultOfAnswer(step.status, ''));
        return this.retry(exchange, String(step.status));
      case 'tunnel':
        // 101 Switching Protocols: from here on the connection is the tunnel's, both ways.
        return this.upgrade(exchange, step.rest);
      case 'done':
        // More than the framing said: the tunnel cannot carry another exchange.
        if (step.excess > 0) drop(exchange.lease, true);
        return this.finish(exchange, true);
    }
  }

  /**
   * The answer is complete: the tunnel is kept for the next request (L4) or goes back to the
   * pool (L7: the next request may go elsewhere); then the next request, or the end.
   */
  private finish(exchange: Exchange, framed: boolean): void {
    this.exchange = undefined;
    this.record(exchange, this.answer.status);
    if (exchange.policy) {
      exchange.policy.note(exchange.lease.target, resultOfAnswer(this.answer.status, ''));
      this.endPolicy(exchange);
    }
    const reusable =
      framed &&
      exchange.head.keepAlive &&
      this.answer.keepAlive &&
      exchange.requestDone &&
      !exchange.lease.closed;
    if (!reusable) drop(exchange.lease, !exchange.requestDone);
    else if (exchange.mode === 'L4') {
      this.sticky = {
        authority: exchange.authority,
        config: exchange.config,
        epoch: exchange.epoch,
        destination: exchange.destination,
        mode: exchange.mode,
        lease: exchange.lease,
      };
    } else this.proxy.returnTunnel(exchange.lease);
    if (!reusable || this.stopping || this.appEnded) return this.close();
    this.socket.resume();
    this.next();
  }

  private record(exchange: Exchange, status: number): void {
    this.proxy.recordRequest({
      mode: exchange.mode,
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
  private async failed(exchange: Exchange, why: string, graceful: boolean): Promise<void> {
    const { policy } = exchange;
    if (policy && !this.answer.answered) {
      // (A tunnel the peer ended cleanly says nothing against the endpoint.)
      // (A pooled tunnel the peer ended cleanly, when it was lent again, says nothing against
      // the endpoint; a fresh one ended before any answer does: its app went away.)
      if (!graceful || !exchange.lease.reused) policy.note(exchange.lease.target, 'reset');
      // Reset after the request went out: a try the policy may make again (`reset`).
      if (exchange.kept && policy.retryAnswer(502, '', 'reset')) return this.retry(exchange, 'reset');
    }
    if (
      this.answer.answered ||
      !exchange.kept ||
      !IDEMPOTENT.has(exchange.head.method) ||
      exchange.retries >= 2
    ) {
      this.record(exchange, 502);
      if (!this.answer.answered) return this.refuse(502, `upstream reset: ${why}`, true);
      return void this.socket.destroy();
    }
    this.busy = true;
    this.socket.pause();
    // A tunnel cut under a request (a new policy, a stopping peer, an app closing an idle
    // connection as it was reused) says nothing against its target: the first resend goes
    // there again on a new tunnel (the balancer is not asked again); a second one elsewhere.
    exchange.retries++;
    exchange.tried ??= new Set([exchange.lease.target.key]);
    const opened =
      exchange.retries > 1
        ? await this.proxy.acquireTunnel(exchange.config, exchange.destination, exchange.tried)
        : await this.proxy.reopenTunnel(exchange.config, exchange.destination, exchange.lease.target);
    this.busy = false;
    // The connection went, or the request was answered meanwhile (out of time).
    if (this.done || this.exchange !== exchange) {
      if (typeof opened === 'object') opened.release(true);
      return this.resumeAfterBusy();
    }
    if (policy?.expired) {
      if (typeof opened === 'object') opened.release(true);
      policy.timedOut('request');
      return this.refuseExchange(exchange, 504, 'upstream request timeout');
    }
    if (opened === 'l7') {
      // The port needs L7 there now: the request, as sent so far, goes the per-request way.
      this.endPolicy(exchange);
      this.exchange = undefined;
      this.pending = Buffer.concat([...exchange.kept, this.pending]);
      return this.giveUp();
    }
    if (typeof opened !== 'object') {
      this.record(exchange, 503);
      return this.refuse(503, `upstream connect error: ${why}`, true);
    }
    exchange.tried.add(opened.target.key);
    // Sent again elsewhere: the balancer is asked afresh for the next request.
    if (opened.target.key !== exchange.lease.target.key) exchange.epoch = NOT_STICKY;
    drop(exchange.lease, true);
    exchange.lease = opened;
    this.answer.reset();
    this.watch(exchange);
    if (policy) this.armPerTry(exchange);
    for (const part of exchange.kept) opened.write(part);
    // What of the body came meanwhile follows what was sent again.
    this.sendPending(exchange);
  }

  /**
   * A wait (a tunnel being had) ended with nothing left to do for its request: the
   * connection reads the app's next request, if the app is still there.
   */
  private resumeAfterBusy(): void {
    if (this.done || this.exchange || this.busy) return;
    if (this.stopping || this.appEnded) return this.close();
    this.socket.resume();
    this.next();
  }

  /** After a 101: what the app sends and what the server sends pass untouched, both ways. */
  private upgrade(exchange: Exchange, after: Buffer): void {
    this.exchange = undefined;
    this.record(exchange, this.answer.status);
    this.endPolicy(exchange);
    exchange.lease.attach(undefined);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.quiet();
    if (after.length > 0) this.socket.write(after);
    const rest = this.pending;
    this.pending = EMPTY;
    exchange.lease.splice(this.socket, rest);
  }

  /** The idle timeout is no longer this class's (the connection became a tunnel, or went elsewhere). */
  private quiet(): void {
    if (this.socket instanceof net.Socket) {
      this.socket.setTimeout(0);
      this.socket.off('timeout', this.onIdle);
    }
  }

  /** Hands the connection, with every byte not yet handled, to the per-request path. */
  private giveUp(): void {
    this.done = true;
    this.unstick();
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('end', this.onEnd);
    this.quiet();
    const buffered = this.pending;
    this.pending = EMPTY;
    this.handOff(this.socket, buffered);
  }

  /**
   * An answer of the proxy's own; `close`: the connection cannot carry another request;
   * `consumed`: the bytes of the refused request (a head without a body) to drop.
   */
  private refuse(
    status: number,
    message: string,
    close: boolean,
    consumed = 0,
    /** More fields of the answer's head (name, value, ...). */
    extra: readonly string[] = [],
  ): void {
    const body = Buffer.from(`${message}\n`);
    this.socket.write(
      writeResponseHead(status, http.STATUS_CODES[status] ?? 'Error', [
        'content-type',
        'text/plain; charset=utf-8',
        'content-length',
        String(body.length),
        ...(overflowOf(message) ? [OVERFLOW_HEADER, overflowOf(message)!] : []),
        ...extra,
        ...(close || this.stopping ? ['connection', 'close'] : []),
      ]),
    );
    this.socket.write(body);
    if (this.exchange) {
      this.endPolicy(this.exchange);
      drop(this.exchange.lease, true);
    }
    this.exchange = undefined;
    if (close || this.stopping || this.appEnded) return this.close();
    // The refused request had no body: the next one may follow.
    this.pending = this.pending.subarray(consumed);
    this.socket.resume();
    this.next();
  }

  private close(): void {
    this.done = true;
    if (this.exchange) {
      this.endPolicy(this.exchange);
      drop(this.exchange.lease, true);
    }
    this.exchange = undefined;
    this.unstick();
    this.socket.resume();
    this.socket.end();
    // An app that keeps sending after our FIN is cut off.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}

/** Ends a tunnel this connection no longer uses; its end is no longer this connection's business. */
function drop(lease: TunnelLease, abort: boolean): void {
  lease.attach(undefined);
  lease.release(abort);
}
