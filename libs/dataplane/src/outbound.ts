import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { dataPlaneMode, type DataPlaneMode, type ProxyConfig } from '@causeway/discovery';
import { headerValue, normalizePath } from '@causeway/http';
import { orderTargets, preferredClusters } from './balancer.ts';
import { Breaker, breakerLimitsOf, OVERFLOW_HEADER, overflowMessage, overflowOf } from './circuit-breaker.ts';
import {
  OutlierDetector,
  outlierPolicyOf,
  resultOfAnswer,
  type OutlierPolicy,
  type TryResult,
} from './outliers.ts';
import type { AppExchange } from './exchange.ts';
import {
  endToEnd,
  GRPC,
  grpcStatusForHttp,
  headerFieldCount,
  isGrpc,
  MAX_REQUEST_HEADERS,
  ReplayableBody,
} from './http-util.ts';
import { UPSTREAM_FAILURE, type Outcome } from './responses.ts';
import { abortStatus, decideFault, INJECTED_FAULT, type Fault, type FaultPolicy } from './faults.ts';
import { ATTEMPT_HEADER, RetryBudget } from './retries.ts';
import { connectionTimeoutsOf, formatGrpcTimeout } from './timeouts.ts';
import {
  clusterPreferenceOf,
  loadBalancerOf,
  resolveDestination,
  routeRequest,
  targetsFor,
  type Destination,
  type RequestFacts,
  type RoutedBackend,
  type Target,
} from './routing.ts';
import { DEFAULT_SIDECAR_TIMEOUTS, type SidecarOptions, type SidecarTimeouts } from './sidecar-options.ts';
import { PolicyMetrics, type ConnectionMetrics, type RequestMetrics } from './telemetry.ts';
import { openTunnel, splice, TunnelRefused } from './tunnel.ts';
import { UpstreamPool } from './upstreams.ts';
import { framedTry } from './framed-try.ts';
import {
  FramingRefused,
  RETRIED_GRPC,
  RetriedAnswer,
  RetryableFailure,
  TimedOut,
  TunnelCut,
  Unsendable,
} from './try-errors.ts';
import {
  IDEMPOTENT,
  policyBundleOf,
  RequestPolicy,
  type PolicyBundle,
  type PolicyHost,
} from './request-policy.ts';

/** A target that refused a connection is tried last for this long. */
const EJECTION_MS = 10_000;
/** A service port whose server side asked for L7 is carried per request for this long. */
const LEARNED_L7_MS = 60_000;
/** Idle tunnels kept per service port and target, and for how long. */
const MAX_IDLE_TUNNELS = 64;
const IDLE_TUNNEL_MS = 30_000;
/** Different targets tried for one request at most. */
const MAX_ATTEMPTS = 4;

/** What the outbound proxy needs of a sidecar's (or an ingress gateway's) settings. */
export type OutboundOptions = Pick<
  SidecarOptions,
  | 'cluster'
  | 'namespace'
  | 'serviceAccount'
  | 'credentials'
  | 'config'
  | 'pathNormalization'
  | 'timeouts'
  | 'retryBufferBytes'
  | 'registry'
  | 'accessLog'
  | 'log'
>;

/** A request the outbound proxy sends on, routed already (see `OutboundProxy.forward`). */
export interface ForwardRequest {
  readonly config: ProxyConfig;
  readonly destination: Destination;
  readonly routed: RoutedBackend;
  readonly method: string;
  /** The normalized origin-form target sent on. */
  readonly path: string;
  /** The `:authority` sent on. */
  readonly authority: string;
  readonly headers: IncomingHttpHeaders;
  readonly grpc: boolean;
  /** Records the outcome (metrics, access log): status, gRPC status, serving cluster, service. */
  readonly record: (status: number, grpcStatus: string, cluster: string, service: string) => void;
  /**
   * Sent as HTTP/1.1 inside a pooled framed tunnel (as the sidecar sends its apps' HTTP/1.1
   * requests) instead of an HTTP/2 stream of its own: for callers whose request came as
   * HTTP/1.1. gRPC always goes as HTTP/2.
   */
  readonly framed?: boolean;
}

/**
 * The sidecar's outbound side: an app's request is routed by its authority and the mesh
 * routes, and sent over a pooled mTLS HTTP/2 session to the nearest healthy endpoint, or to
 * another cluster through its east-west gateway; a target that cannot be reached makes way
 * for the next one.
 */
export class OutboundProxy implements PolicyHost {
  readonly pool: UpstreamPool;
  /**
   * Exchanges (per request) and connections (carried whole) in flight per target key, for
   * least request: a tunnel idle in the pool between exchanges does not count.
   */
  private readonly inFlight = new Map<string, number>();
  private readonly countInFlight = (key: string, delta: number): void => {
    const count = (this.inFlight.get(key) ?? 0) + delta;
    if (count > 0) this.inFlight.set(key, count);
    else this.inFlight.delete(key);
  };
  private readonly ejectedUntil = new Map<string, number>();
  /**
   * Changes whenever a target fails or its ejection ends: the balancer might now choose
   * differently. A connection's kept tunnel (L4) is judged again by `keepsTarget` when it
   * changed, as under a new config: one that changes nothing about the connection's target
   * leaves it be. (A fallback taken in a bad moment is never kept.)
   */
  balancerEpoch = 0;
  /** Per ejected target, the timer that marks the end of its ejection. */
  private readonly ejectionEnds = new Map<string, NodeJS.Timeout>();
  private readonly roundRobin = new Map<string, number>();
  /** Each service port's mode, worked out once per config. */
  private modes = new WeakMap<ProxyConfig, Map<string, DataPlaneMode>>();
  /** Idle tunnels per service port and target, for the next request of any app connection. */
  private readonly idle = new Map<string, TunnelLease[]>();
  /** Service ports whose other side asked for L7 lately (a policy there needs HTTP): until when. */
  private readonly learnedL7 = new Map<string, number>();
  /** The service each of the app's HTTP/2 connections was opened for (its first stream's). */
  private readonly h2Destinations = new WeakMap<object, string>();
  /** The app's connections carried whole right now (cut when the sidecar stops). */
  readonly tunnels = new Set<Duplex>();
  private readonly timeoutsInForce: SidecarTimeouts;
  readonly policyMetrics: PolicyMetrics;
  /** Retry budgets per destination service. */
  private readonly budgets = new Map<string, RetryBudget>();
  /** Passive health of endpoints (TrafficPolicy `outlierDetection`). */
  readonly outliers = new OutlierDetector();
  /** What each destination service has in flight, against its circuit breaker. */
  private readonly breakers = new Map<string, Breaker>();

  constructor(
    private readonly options: OutboundOptions,
    private readonly metrics: RequestMetrics,
    private readonly connections: ConnectionMetrics,
    /**
     * How framed tunnels are opened: for one app's connection (the sidecar: on an L4 port the
     * bytes are carried as they are), or for requests served one by one at the far side
     * whatever the port's mode ('per-request': the ingress gateway, whose clients' requests
     * are authorized and told their caller there).
     */
    private readonly framing: true | 'per-request' = true,
  ) {
    this.timeoutsInForce = { ...DEFAULT_SIDECAR_TIMEOUTS, ...options.timeouts };
    this.policyMetrics = new PolicyMetrics(options.registry, () => this.outliers.ejected(), {
      cluster: options.cluster,
      workload: options.serviceAccount,
    });
    this.pool = new UpstreamPool(options.credentials, (message, fields) =>
      options.log?.('warn', message, fields),
    );
  }

  /** A new config was applied: sessions to targets it no longer has are closed when idle. */
  configChanged(config: ProxyConfig): void {
    const keys = new Set<string>();
    for (const service of config.services)
      for (const port of service.ports) {
        const { local, remote } = targetsFor(
          config,
          { namespace: service.namespace, name: service.name, port: port.port },
          service.scope === 'cluster',
        );
        for (const target of [...local, ...remote]) keys.add(target.key);
      }
    this.pool.retain(keys);
    const now = Date.now();
    this.outliers.retain(keys, now);
    for (const [service, breaker] of this.breakers) if (breaker.idle) this.breakers.delete(service);
    for (const [key, until] of this.ejectedUntil)
      if (until <= now || !keys.has(key)) this.ejectedUntil.delete(key);
    const ports = new Set(
      config.services.flatMap((service) =>
        service.ports.map((port) => `${service.namespace}/${service.name}:${port.port}`),
      ),
    );
    for (const key of this.roundRobin.keys()) if (!ports.has(key)) this.roundRobin.delete(key);
  }

  /** Closes the pooled sessions to peers (after the requests that used them have finished). */
  close(): void {
    for (const timer of this.ejectionEnds.values()) clearTimeout(timer);
    this.ejectionEnds.clear();
    for (const list of this.idle.values()) for (const lease of list) lease.release(false);
    this.idle.clear();
    this.pool.close();
  }

  /** One request of the app's, served per request (HTTP/2, and HTTP/1.1 where framing cannot serve it). */
  async handle(exchange: AppExchange): Promise<void> {
    const started = process.hrtime.bigint();
    const config = this.options.config();
    const { headers: requestHeaders, method } = exchange;
    const grpc = isGrpc(requestHeaders);
    let authority = exchange.authority;
    let path = exchange.target;
    if (/^https?:\/\//i.test(path)) {
      // Absolute form: the app uses this sidecar as its HTTP proxy.
      const url = new URL(path);
      authority = url.host;
      path = `${url.pathname}${url.search}`;
    }
    const record = (status: number, grpcStatus: string, cluster: string, service: string): void => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics.record({
        reporter: 'source',
        sourceCluster: this.options.cluster,
        sourceWorkload: this.options.serviceAccount,
        destinationCluster: cluster,
        destinationService: service,
        responseCode: status,
        grpcStatus,
        seconds,
      });
      this.options.accessLog?.({
        reporter: 'source',
        method,
        authority,
        path,
        status,
        grpcStatus: grpc ? grpcStatus : undefined,
        durationMs: Math.round(seconds * 100_000) / 100,
        destinationCluster: cluster,
        destinationService: service,
        traceparent: requestHeaders.traceparent,
      });
    };
    // More header fields than any hop accepts: 431 here, nothing sent on.
    const fields = headerFieldCount(exchange.rawHeaders);
    if (fields > MAX_REQUEST_HEADERS) {
      exchange.fail(431, `${fields} header fields; at most ${MAX_REQUEST_HEADERS} are accepted`);
      return record(431, grpc ? String(GRPC.INTERNAL) : '', 'unknown', 'unknown');
    }
    if (!config) {
      exchange.fail(503, 'no config from the controller yet');
      return record(503, grpc ? String(GRPC.UNAVAILABLE) : '', 'unknown', 'unknown');
    }
    // Routing sees the path the server's authorization and app will see.
    const normalized = normalizePath(path, this.options.pathNormalization);
    if (!normalized.ok) {
      exchange.fail(400, `${normalized.code}: ${normalized.reason}`);
      return record(400, grpc ? String(GRPC.INTERNAL) : '', 'unknown', 'unknown');
    }
    path = normalized.target;
    const destination = resolveDestination(config, authority, this.options.namespace);
    if (!destination) {
      exchange.fail(404, `no service ${authority} in the clusterset`);
      // The label is not the raw authority: an app could fill the metrics with made-up names.
      return record(404, grpc ? String(GRPC.UNIMPLEMENTED) : '', 'unknown', 'unknown');
    }
    // An app's HTTP/2 connection is for one service, the one its first stream named: a later
    // stream naming another one is misdirected (RFC 9110 §15.5.20), never sent elsewhere.
    const session = exchange.connection;
    if (session) {
      const key = `${destination.service.namespace}/${destination.service.name}:${destination.port}`;
      const pinned = this.h2Destinations.get(session);
      if (pinned === undefined) this.h2Destinations.set(session, key);
      else if (pinned !== key) {
        exchange.fail(421, `this connection is for ${pinned}, not ${authority}`);
        return record(421, grpc ? String(GRPC.UNAVAILABLE) : '', 'unknown', destination.service.hostname);
      }
    }
    const routed = routeRequest(config, destination, {
      method,
      path,
      headers: requestHeaders,
      grpc,
    });
    if ('status' in routed) {
      exchange.fail(routed.status, routed.reason);
      return record(
        routed.status,
        grpc ? String(grpcStatusForHttp(routed.status)) : '',
        'unknown',
        destination.service.hostname,
      );
    }
    return this.forward(exchange, {
      config,
      destination,
      routed,
      method,
      path,
      authority,
      headers: requestHeaders,
      grpc,
      record,
    });
  }

  /**
   * Sends one request to the backend `routed` chose, under its TrafficPolicy (faults,
   * retries, timeouts, circuit breaker, outlier detection): the sidecar's path after
   * routing, and the ingress gateway's after its Gateway API routing. `headers` go on as
   * given (end-to-end ones only), with `authority` and `path`.
   */
  async forward(exchange: AppExchange, request: ForwardRequest): Promise<void> {
    const { config, destination, routed, method, path, authority, grpc, record } = request;
    const requestHeaders = request.headers;
    // Over a framed tunnel where asked (not gRPC: its trailers need HTTP/2), unless the
    // service's circuit breaker counts connections (framed tunnels would each count as one).
    let framed =
      request.framed === true &&
      !grpc &&
      breakerLimitsOf(config, destination.service.namespace, destination.service.name)?.maxConnections ===
        undefined &&
      !this.framingRefused(destination);
    const serviceName = backendName(destination, routed);
    const facts = { method, path, headers: requestHeaders, grpc };
    // Streamed as it comes; its start is kept for a retry on another target.
    const source = exchange.body;
    const body = source && new ReplayableBody(source, this.options.retryBufferBytes ?? 65_536);
    const headers: http2.OutgoingHttpHeaders = {
      ...endToEnd(requestHeaders),
      ':method': method,
      ':path': path,
      ':authority': authority,
      ':scheme': 'https',
    };
    // The attempt count is this sidecar's to state, never the app's.
    delete headers[ATTEMPT_HEADER];
    const policy = this.requestPolicy(
      config,
      destination,
      routed,
      facts,
      () => body === undefined || body.replayable,
    );
    const { deadline } = policy;
    const timedOut = (timeout: 'request' | 'per-try', cluster: string): void => {
      policy.timedOut(timeout);
      exchange.fail(504, timeout === 'request' ? 'upstream request timeout' : 'upstream per-try timeout', {
        grpcStatus: GRPC.DEADLINE_EXCEEDED,
      });
      record(504, grpc ? String(GRPC.DEADLINE_EXCEEDED) : '', cluster, serviceName);
    };
    const nextTry = async (why: string): Promise<boolean> => {
      body?.hold();
      await policy.nextTry(why);
      return !exchange.closed;
    };
    const retryAnswer = (status: number, grpcStatus: string, failure?: 'connect-failure' | 'reset') =>
      policy.retryAnswer(status, grpcStatus, failure);
    try {
      // Over the circuit breaker's maxRequests: a fast 503, or a wait for a place (which ends
      // when the caller leaves).
      exchange.onClosed(() => policy.close());
      const admission = policy.admit();
      const admitted = admission instanceof Promise ? await admission : admission;
      if (admitted === 'gone') return record(499, '', 'unknown', serviceName);
      if (admitted === 'timed-out') return timedOut('request', 'unknown');
      if (admitted !== true) {
        exchange.fail(503, overflowMessage(admitted, policy.breakerLimits!.policy), {
          grpcStatus: GRPC.UNAVAILABLE,
          headers: { [OVERFLOW_HEADER]: admitted },
        });
        return record(503, grpc ? String(GRPC.UNAVAILABLE) : '', 'unknown', serviceName);
      }
      if (exchange.closed) return record(499, '', 'unknown', serviceName);
      for (let attempt = 1; ; attempt++) {
        if (policy.expired) return timedOut('request', 'unknown');
        if (policy.retry) headers[ATTEMPT_HEADER] = String(attempt);
        const fault = policy.fault();
        if (fault) {
          if (fault.delayMs > 0) {
            await policy.pause(fault.delayMs);
            if (exchange.closed) return record(499, '', 'unknown', serviceName);
            if (policy.expired) return timedOut('request', 'unknown');
          }
          if (fault.abort) {
            const status = abortStatus(fault.abort, grpcStatusForHttp);
            const grpcStatus = grpc ? String(status.grpc) : '';
            // An injected abort is a failed try like any other: retries may mask it.
            // (A gRPC caller's try is judged by its gRPC status, as a server's answer would be.)
            if (retryAnswer(grpc ? 200 : status.http, grpcStatus)) {
              if (await nextTry(String(grpc ? status.grpc : status.http))) continue;
              return record(499, '', 'unknown', serviceName);
            }
            exchange.fail(status.http, `fault injected by TrafficPolicy ${fault.policy}`, {
              grpcStatus: status.grpc,
              headers: { [INJECTED_FAULT]: 'abort' },
            });
            return record(status.http, grpcStatus, 'unknown', serviceName);
          }
        }
        const targets = this.order(config, routed, targetsFor(config, routed, destination.localOnly));
        if (targets.length === 0) {
          exchange.fail(503, `no ready endpoint of ${serviceName}`);
          return record(503, grpc ? String(GRPC.UNAVAILABLE) : '', 'unknown', serviceName);
        }
        const failures: string[] = [];
        const plan = targets.slice(0, MAX_ATTEMPTS);
        let reconnected = false;
        let held: RetriedAnswer | undefined;
        for (let index = 0; index < plan.length; index++) {
          const target = plan[index]!;
          // What is left of the deadline goes with the call (a server never gets more time).
          if (grpc && deadline !== undefined)
            headers['grpc-timeout'] = formatGrpcTimeout(deadline - performance.now());
          try {
            const outcome = framed
              ? await framedTry(
                  {
                    tunnelTo: (to, fresh) => this.tunnelTo(config, destination, to, fresh),
                    returnTunnel: this.returnTunnel,
                  },
                  target,
                  headers,
                  body,
                  exchange,
                  retryAnswer,
                  { perTryMs: policy.perTryMs(), expiry: policy.expirySignal, fresh: reconnected },
                )
              : await this.attempt(target, headers, body, exchange, retryAnswer, {
                  perTryMs: policy.perTryMs(),
                  expiry: policy.expirySignal,
                  grpc,
                  ...policy.connection,
                });
            policy.note(target, resultOfAnswer(outcome.status, outcome.grpcStatus));
            return record(outcome.status, outcome.grpcStatus, target.cluster, serviceName);
          } catch (error) {
            if (exchange.closed) return record(499, '', target.cluster, serviceName);
            if (error instanceof FramingRefused) {
              // The same target again, as HTTP/2 (this request's tries from here on).
              framed = false;
              index--;
              continue;
            }
            if (error instanceof TimedOut) {
              if (error.timeout === 'per-try') policy.note(target, 'reset');
              return timedOut(error.timeout, target.cluster);
            }
            if (error instanceof RetriedAnswer) {
              policy.note(target, error.result);
              held = error;
              break;
            }
            // (A request that cannot be sent says nothing about the endpoint, and is not tried again.)
            if (error instanceof Unsendable) {
              exchange.fail(502, error.message);
              return record(502, grpc ? String(GRPC.UNAVAILABLE) : '', target.cluster, serviceName);
            }
            if (!(error instanceof RetryableFailure)) {
              if (!(error instanceof TunnelCut) || error.counts) policy.note(target, 'reset');
              // Reset after the request went out: a try the policy may make again (`reset`).
              if (!exchange.answered && retryAnswer(502, '', 'reset')) {
                held = new RetriedAnswer('reset', 'reset');
                break;
              }
              exchange.fail(502, `upstream reset: ${(error as Error).message}`);
              return record(502, grpc ? String(GRPC.UNAVAILABLE) : '', target.cluster, serviceName);
            }
            failures.push(`${target.cluster} ${target.host}:${target.port}: ${error.message}`);
            if (error.result) policy.note(target, error.result);
            if (error.eject) this.ejectTarget(target);
            if (exchange.answered || (body && !body.replayable)) break;
            // A lost connection (GOAWAY, reset) gets one new connection to the same target.
            if (error.reconnect && !reconnected) {
              reconnected = true;
              plan.splice(index + 1, 0, target);
            }
          }
        }
        if (held) {
          if (await nextTry(held.reason)) continue;
          return record(499, '', 'unknown', serviceName);
        }
        // Every target failed before answering: a try the policy may make again.
        if (!exchange.answered && retryAnswer(503, '', 'connect-failure')) {
          if (await nextTry('connect-failure')) continue;
          return record(499, '', 'unknown', serviceName);
        }
        this.options.log?.('warn', 'upstream failed', { service: serviceName, failures });
        exchange.fail(503, `upstream connect error: ${failures.join('; ')}`);
        return record(503, grpc ? String(GRPC.UNAVAILABLE) : '', targets[0]!.cluster, serviceName);
      }
    } finally {
      policy.close();
      // Whatever of the body is still coming has nowhere to go (the answer is complete, or
      // there is none): it is read and dropped, so the app's connection stays usable.
      body?.discard();
    }
  }

  /**
   * The TrafficPolicy of one request to `destination` that `routed` chose (see
   * `RequestPolicy`); `replayable`: whether the request can still be sent again.
   */
  requestPolicy(
    config: ProxyConfig,
    destination: Destination,
    routed: RoutedBackend,
    facts: RequestFacts,
    replayable: () => boolean,
    bundle = policyBundleOf(config, destination, routed),
  ): RequestPolicy {
    return new RequestPolicy(this, bundle, facts, backendName(destination, routed), replayable);
  }

  /** The circuit breaker state of a destination service (made on first use). */
  breaker(service: string): Breaker {
    let breaker = this.breakers.get(service);
    if (!breaker) this.breakers.set(service, (breaker = new Breaker()));
    return breaker;
  }

  /** One try's result on `target`, for outlier detection: an ejection is applied, counted and logged. */
  noteTry(
    target: Target,
    group: readonly Target[],
    policy: OutlierPolicy,
    result: TryResult,
    serviceName: string,
  ): void {
    const ejected = this.outliers.record(target, group, policy, result, serviceName);
    if (!ejected) return;
    this.ejectTarget(target, ejected.ms);
    this.policyMetrics.ejected({
      ...this.policyLabels(serviceName, policy.policy),
      destinationCluster: target.cluster,
      reason: ejected.cause,
    });
    this.options.log?.('warn', 'endpoint ejected by outlier detection', {
      service: serviceName,
      cluster: target.cluster,
      endpoint: `${target.host}:${target.port}`,
      reason: ejected.cause,
      seconds: ejected.ms / 1000,
    });
  }

  /** The retry budget of a destination service (made on first use). */
  retryBudget(service: string): RetryBudget {
    let budget = this.budgets.get(service);
    if (!budget) this.budgets.set(service, (budget = new RetryBudget()));
    return budget;
  }

  /** The labels of this sidecar's policy metrics for a destination and a policy. */
  policyLabels(serviceName: string, policy: string) {
    return {
      sourceCluster: this.options.cluster,
      sourceWorkload: this.options.serviceAccount,
      destinationService: serviceName,
      policy,
    };
  }

  /**
   * The fault `faults` (a TrafficPolicy's) injects into one try of a request, drawn anew each
   * time and counted in `causeway_faults_injected_total`; none: it goes on.
   */
  drawFault(
    faults: FaultPolicy,
    facts: RequestFacts,
    serviceName: string,
  ): (Fault & { readonly policy: string }) | undefined {
    const fault = decideFault(faults, facts);
    if (!fault) return undefined;
    const labels = this.policyLabels(serviceName, faults.policy);
    if (fault.delayMs > 0) this.policyMetrics.faultInjected({ ...labels, fault: 'delay' });
    if (fault.abort) this.policyMetrics.faultInjected({ ...labels, fault: 'abort' });
    return { ...fault, policy: faults.policy };
  }

  /**
   * What TrafficPolicies requests to `destination` that `routed` chose are under; with
   * `perRequest`, each such request is tried by the sidecar one by one (see `PolicyBundle`).
   */
  policyBundle(config: ProxyConfig, destination: Destination, routed: RoutedBackend): PolicyBundle {
    return policyBundleOf(config, destination, routed);
  }

  /** L4 or L7 for a service port under a config (see `dataPlaneMode`). */
  modeOf(config: ProxyConfig, namespace: string, name: string, port: number): DataPlaneMode {
    let modes = this.modes.get(config);
    if (!modes) this.modes.set(config, (modes = new Map()));
    const key = `${namespace}/${name}:${port}`;
    const learned = this.learnedL7.get(key);
    if (learned !== undefined) {
      if (learned > Date.now()) return 'L7';
      this.learnedL7.delete(key);
    }
    let mode = modes.get(key);
    if (!mode) modes.set(key, (mode = dataPlaneMode(config, namespace, name, port).mode));
    return mode;
  }

  /** Whether the far side lately refused framed tunnels to `destination`'s port (its app speaks h2c). */
  private framingRefused(destination: Destination): boolean {
    const { service, port } = destination;
    return (this.learnedL7.get(`${service.namespace}/${service.name}:${port}`) ?? 0) > Date.now();
  }

  /**
   * An app's `CONNECT host:port` (its `https_proxy` or `grpc_proxy` is this sidecar): the
   * connection is carried whole to one endpoint of the service (L4), the next endpoint tried
   * when one cannot be reached. A service port that needs L7 gets `200` at once, and what the
   * app sends inside is served request by request by `asL7`, like a direct connection.
   */
  async connect(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    asL7: (socket: Duplex, head: Buffer) => void,
  ): Promise<void> {
    const config = this.options.config();
    const refuse = (status: number, reason: string, message: string): void => {
      const body = `${message}\n`;
      const overflow = overflowOf(message);
      socket.end(
        `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${overflow ? `${OVERFLOW_HEADER}: ${overflow}\r\n` : ''}connection: close\r\n\r\n${body}`,
      );
    };
    if (!config) return refuse(503, 'Service Unavailable', 'no config from the controller yet');
    const authority = request.url ?? '';
    const destination = resolveDestination(config, authority, this.options.namespace);
    if (!destination) return refuse(404, 'Not Found', `no service ${authority} in the clusterset`);
    const established = (): boolean => socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const { service } = destination;
    if (this.modeOf(config, service.namespace, service.name, destination.port) === 'L7') {
      established();
      return asL7(socket, head);
    }
    const outcome = await this.carry(config, destination, socket, head, established);
    if (outcome === 'l7') {
      this.learnedL7.set(
        `${service.namespace}/${service.name}:${destination.port}`,
        Date.now() + LEARNED_L7_MS,
      );
      established();
      asL7(socket, head);
    } else if (outcome !== 'carried') refuse(503, 'Service Unavailable', outcome);
  }

  /**
   * Carries `socket` whole to the first target of `destination` that accepts a tunnel;
   * `ready` runs just before the first byte goes through. Says 'carried', 'l7' (the other
   * side needs L7 now), or why no target would take it.
   */
  async carry(
    config: ProxyConfig,
    destination: Destination,
    socket: Duplex,
    head: Buffer,
    ready: () => void,
  ): Promise<'carried' | 'l7' | string> {
    const lease = await this.leaseTunnel(config, destination, new Set());
    if (typeof lease !== 'object') return lease;
    if (socket.destroyed) {
      lease.release(true);
      return 'carried';
    }
    ready();
    this.tunnels.add(socket);
    socket.once('close', () => this.tunnels.delete(socket));
    lease.splice(socket, head);
    return 'carried';
  }

  /**
   * A tunnel to one target of `destination` (none of `exclude`), the next target tried when
   * one cannot be reached (and ejected for a while). Says 'l7' when the server side needs
   * L7 for the port (remembered for a while), or why no target would take it.
   */
  leaseTunnel(
    config: ProxyConfig,
    destination: Destination,
    exclude: ReadonlySet<string>,
  ): Promise<TunnelLease | 'l7' | string> {
    return this.openTo(config, destination, this.candidates(config, destination, exclude), false);
  }

  /**
   * A tunnel for one request of an app's HTTP/1.1 connection: the balancer picks the
   * target per request, and an idle tunnel to it is reused when there is one.
   */
  async acquireTunnel(
    config: ProxyConfig,
    destination: Destination,
    exclude: ReadonlySet<string>,
  ): Promise<TunnelLease | 'l7' | string> {
    const targets = this.candidates(config, destination, exclude);
    const first = targets[0];
    const overflow = this.connectionOverflow(config, destination);
    if (overflow) return overflow;
    const idle = first && this.idleTunnel(destination, first);
    return idle ?? this.openTo(config, destination, targets, true);
  }

  /** An idle framed tunnel to `target` for `destination`, lent out; none: there is none open. */
  private idleTunnel(destination: Destination, target: Target): TunnelLease | undefined {
    const { service, port } = destination;
    const idle = this.idle.get(`${service.namespace}/${service.name}:${port} ${target.key}`);
    for (let lease = idle?.pop(); lease; lease = idle?.pop()) {
      clearTimeout((lease as StreamLease).idleTimer);
      if (!lease.closed) {
        (lease as StreamLease).busy(true);
        (lease as StreamLease).fallback = false;
        return lease;
      }
      lease.release(false);
    }
    return undefined;
  }

  /**
   * A framed tunnel to one target of `destination` for one request: an idle one, else a new
   * one; 'l7' when the far side takes no framing for the port (its app speaks h2c).
   */
  private async tunnelTo(
    config: ProxyConfig,
    destination: Destination,
    target: Target,
    fresh: boolean,
  ): Promise<TunnelLease | 'l7' | string> {
    return (
      (fresh ? undefined : this.idleTunnel(destination, target)) ??
      (await this.openTo(config, destination, [target], true))
    );
  }

  /**
   * A new tunnel for an upgrade (WebSocket) that the ingress gateway carries whole: served
   * per request at the far side where it can be (the upgrade authorized, its caller
   * stated), else framed as the sidecar frames its apps' connections (an h2c app's port,
   * or a peer that does not serve tunnels per request). Never an idle one: an upgrade is
   * not sent again when its tunnel turns out to be closing.
   */
  async upgradeTunnel(config: ProxyConfig, destination: Destination): Promise<TunnelLease | string> {
    const targets = this.candidates(config, destination, new Set());
    if (this.framing === 'per-request' && !this.framingRefused(destination)) {
      const lease = await this.openTo(config, destination, targets, true);
      if (lease !== 'l7') return lease;
    }
    const lease = await this.openTo(config, destination, targets, true, true);
    return lease === 'l7' ? `no tunnel to ${destination.service.hostname}` : lease;
  }

  /**
   * Whether a connection's kept tunnel to `target` stays where it is under a new config (L4
   * balances connections, not requests): the target is still a first choice there, that is a
   * ready local endpoint, or the remote cluster's gateway the balancer takes first while no
   * local endpoint is ready.
   * A config that moved the service's traffic elsewhere (the endpoint left, a local one
   * came back) sends the next request to the balancer.
   */
  keepsTarget(config: ProxyConfig, destination: Destination, target: Target): boolean {
    const { service, port } = destination;
    const targets = targetsFor(
      config,
      { namespace: service.namespace, name: service.name, port },
      destination.localOnly,
    );
    const now = Date.now();
    const healthy = (candidate: Target) => (this.ejectedUntil.get(candidate.key) ?? 0) <= now;
    const preference = clusterPreferenceOf(config, service.namespace, service.name);
    if (preference)
      // Under cluster weights or priorities: still in a cluster new traffic may go to.
      return (
        targets.all.some((candidate) => candidate.key === target.key && healthy(candidate)) &&
        preferredClusters(targets, preference, (candidate) => !healthy(candidate)).has(target.cluster)
      );
    // A ready local endpoint, any of them (the balancer chooses among them); else the remote
    // cluster the balancer takes first (the first healthy one, in the config's order).
    if (targets.local.some(healthy))
      return targets.local.some((candidate) => candidate.key === target.key && healthy(candidate));
    return targets.remote.find(healthy)?.key === target.key;
  }

  /** The targets of a destination in the order to try them (the balancer's pick first). */
  private candidates(config: ProxyConfig, destination: Destination, exclude: ReadonlySet<string>): Target[] {
    const { service, port } = destination;
    const routed = { namespace: service.namespace, name: service.name, port };
    return this.order(config, routed, targetsFor(config, routed, destination.localOnly)).filter(
      (target) => !exclude.has(target.key),
    );
  }

  /**
   * Opens a tunnel to the first of `targets` that takes one; `framed`: it carries HTTP/1.1
   * exchanges framed by this side (an L7 port at the other end may take it).
   */
  private async openTo(
    config: ProxyConfig,
    destination: Destination,
    targets: readonly Target[],
    framed: boolean,
    /** How a framed tunnel is opened (see the constructor's `framing`). */
    framing: true | 'per-request' = this.framing,
  ): Promise<TunnelLease | 'l7' | string> {
    const { service } = destination;
    if (targets.length === 0) return `no ready endpoint of ${service.hostname}`;
    // The circuit breaker's connection limit: app connections carried to the service at once.
    const overflow = this.connectionOverflow(config, destination);
    if (overflow) return overflow;
    // A place under maxConnections is held while the tunnel opens (the lease takes it over).
    const counted = breakerLimitsOf(config, service.namespace, service.name)?.maxConnections !== undefined;
    const countConnection = counted ? this.connectionCounter(service.hostname) : undefined;
    countConnection?.(1);
    try {
      return await this.openFirst(config, destination, targets, framed && framing, countConnection);
    } finally {
      countConnection?.(-1);
    }
  }

  /**
   * The refusal of a new (or reused) tunnel to `destination` when its circuit breaker's
   * `maxConnections` is reached (counted); none: it may go ahead.
   */
  private connectionOverflow(config: ProxyConfig, destination: Destination): string | undefined {
    const { service } = destination;
    const limits = breakerLimitsOf(config, service.namespace, service.name);
    if (limits?.maxConnections === undefined) return undefined;
    if (this.breaker(service.hostname).connections < limits.maxConnections) return undefined;
    this.policyMetrics.overflowed({
      ...this.policyLabels(service.hostname, limits.policy),
      reason: 'max-connections',
    });
    return overflowMessage('max-connections', limits.policy);
  }

  /** Counts a destination's tunnels in use under its circuit breaker (whichever breaker is current). */
  private connectionCounter(service: string): (delta: number) => void {
    return (delta) => {
      this.breaker(service).connections += delta;
    };
  }

  /** `openTo` past the circuit breaker: the first of `targets` that takes a tunnel. */
  private async openFirst(
    config: ProxyConfig,
    destination: Destination,
    targets: readonly Target[],
    framed: boolean | 'per-request',
    countConnection: ((delta: number) => void) | undefined,
  ): Promise<TunnelLease | 'l7' | string> {
    const { service, port } = destination;
    const key = `${service.namespace}/${service.name}:${port}`;
    const outlierPolicy = outlierPolicyOf(config, service.namespace, service.name);
    const timeouts = connectionTimeoutsOf(config, service.namespace, service.name);
    const failures: string[] = [];
    for (const target of targets.slice(0, MAX_ATTEMPTS)) {
      try {
        const stream = await openTunnel(
          this.pool,
          target,
          `${service.hostname}:${port}`,
          framed,
          this.timeoutsInForce.tunnelOpenMs,
          timeouts.connectMs,
        );
        if (outlierPolicy) this.noteTry(target, [], outlierPolicy, 'connected', service.hostname);
        if (timeouts.idleMs !== undefined)
          stream.setTimeout(timeouts.idleMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
        const lease = new StreamLease(
          key,
          target,
          stream,
          this.connections,
          this.countInFlight,
          {
            reporter: 'source',
            sourceCluster: this.options.cluster,
            sourceWorkload: this.options.serviceAccount,
            destinationCluster: target.cluster,
            destinationService: service.hostname,
          },
          countConnection,
        );
        lease.fallback = target !== targets[0];
        return lease;
      } catch (error) {
        if (!(error instanceof TunnelRefused)) throw error;
        if (error.l7Required) {
          this.learnedL7.set(key, Date.now() + LEARNED_L7_MS);
          return 'l7';
        }
        if (error.eject) this.ejectTarget(target);
        if (error.eject && outlierPolicy)
          this.noteTry(
            target,
            targetsFor(
              config,
              { namespace: service.namespace, name: service.name, port },
              destination.localOnly,
            ).all,
            outlierPolicy,
            'local',
            service.hostname,
          );
        failures.push(`${target.cluster} ${target.host}:${target.port}: ${error.message}`);
      }
    }
    this.options.log?.('warn', 'upstream failed', { service: service.hostname, failures });
    return `upstream connect error: ${failures.join('; ')}`;
  }

  /** A tunnel whose exchange ended cleanly waits for the next request to its target. */
  readonly returnTunnel = (lease: TunnelLease): void => {
    if (lease.closed) return;
    lease.attach(undefined);
    (lease as StreamLease).busy(false);
    const key = `${lease.key} ${lease.target.key}`;
    let idle = this.idle.get(key);
    if (!idle) this.idle.set(key, (idle = []));
    // A tunnel that a slow app left paused is not lent again.
    if (idle.length >= MAX_IDLE_TUNNELS || (lease as StreamLease).paused) return lease.release(false);
    idle.push(lease);
    const forget = (): void => {
      const list = this.idle.get(key);
      const at = list?.indexOf(lease) ?? -1;
      if (at >= 0) list!.splice(at, 1);
      if (list?.length === 0) this.idle.delete(key);
    };
    (lease as StreamLease).onEnded = forget;
    // Idle too long: closed (its session may be going; the app behind it times out anyway).
    (lease as StreamLease).idleTimer = setTimeout(() => {
      forget();
      lease.release(false);
    }, IDLE_TUNNEL_MS).unref();
  };

  /**
   * A new tunnel for a request whose tunnel was cut before any answer: to the same target
   * first (the cut says nothing against it; the balancer is not asked again), then the others.
   */
  reopenTunnel(
    config: ProxyConfig,
    destination: Destination,
    same: Target,
  ): Promise<TunnelLease | 'l7' | string> {
    const { service, port } = destination;
    const all = targetsFor(
      config,
      { namespace: service.namespace, name: service.name, port },
      destination.localOnly,
    ).all;
    return this.openTo(config, destination, [same, ...all.filter((target) => target.key !== same.key)], true);
  }

  /** One request of an app's HTTP/1.1 connection framed by the sidecar, for metrics and the access log. */
  recordRequest(entry: {
    mode: DataPlaneMode;
    method: string;
    authority: string;
    path: string;
    status: number;
    seconds: number;
    cluster: string;
    service: string;
    /** The request's fields (flat name/value list), read only for the access log. */
    headers: readonly string[];
  }): void {
    this.metrics.record({
      reporter: 'source',
      sourceCluster: this.options.cluster,
      sourceWorkload: this.options.serviceAccount,
      destinationCluster: entry.cluster,
      destinationService: entry.service,
      responseCode: entry.status,
      grpcStatus: '',
      seconds: entry.seconds,
    });
    this.options.accessLog?.({
      reporter: 'source',
      mode: entry.mode,
      method: entry.method,
      authority: entry.authority,
      path: entry.path,
      status: entry.status,
      durationMs: Math.round(entry.seconds * 100_000) / 100,
      destinationCluster: entry.cluster,
      destinationService: entry.service,
      traceparent: headerValue(entry.headers, 'traceparent'),
    });
  }

  /**
   * A target that failed is tried last for a while (`ms`: outlier detection's ejection, else
   * a short one); its end changes the balancer's epoch too. A shorter ejection never cuts a
   * longer one short.
   */
  ejectTarget(target: Target, ms = EJECTION_MS): void {
    const until = Date.now() + ms;
    if ((this.ejectedUntil.get(target.key) ?? 0) >= until) return;
    this.ejectedUntil.set(target.key, until);
    this.balancerEpoch++;
    clearTimeout(this.ejectionEnds.get(target.key));
    this.ejectionEnds.set(
      target.key,
      setTimeout(() => {
        this.ejectionEnds.delete(target.key);
        // (A timer may fire a little before the wall clock reaches `until`: the ejection
        // ends now all the same, so that what is judged under the new epoch sees it ended.)
        this.ejectedUntil.delete(target.key);
        this.balancerEpoch++;
      }, ms).unref(),
    );
  }

  /** The sidecar's log. */
  log(level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void {
    this.options.log?.(level, message, fields);
  }

  /** The config now in force (undefined before the first). */
  config(): ProxyConfig | undefined {
    return this.options.config();
  }

  get namespace(): string {
    return this.options.namespace;
  }

  /** The timeouts in force (the defaults where the options say nothing). */
  get timeouts(): SidecarTimeouts {
    return this.timeoutsInForce;
  }

  get pathNormalization(): SidecarOptions['pathNormalization'] {
    return this.options.pathNormalization;
  }

  /** The order a request's targets are tried in (see `orderTargets`). */
  private order(
    config: ProxyConfig,
    routed: { namespace: string; name: string; port: number },
    targets: ReturnType<typeof targetsFor>,
  ): readonly Target[] {
    const now = Date.now();
    for (const [key, until] of this.ejectedUntil) if (until <= now) this.ejectedUntil.delete(key);
    return orderTargets(
      targets,
      loadBalancerOf(config, routed.namespace, routed.name),
      `${routed.namespace}/${routed.name}:${routed.port}`,
      {
        ejectedUntil: this.ejectedUntil,
        roundRobin: this.roundRobin,
        active: (key) => this.inFlight.get(key) ?? 0,
      },
      now,
      clusterPreferenceOf(config, routed.namespace, routed.name),
    );
  }

  /** One try on one target. Throws RetryableFailure when nothing was sent back to the app yet. */
  private attempt(
    target: Target,
    headers: http2.OutgoingHttpHeaders,
    body: ReplayableBody | undefined,
    exchange: AppExchange,
    /** Whether an answer is retried instead of passed on (then the attempt throws RetriedAnswer). */
    retryAnswer: (status: number, grpcStatus: string) => boolean,
    limits: {
      /** The try's own time limit (until its answer starts). */
      readonly perTryMs?: number;
      /** Aborted when the whole request's time is up. */
      readonly expiry?: AbortSignal;
      readonly grpc: boolean;
      /** A new session to the target must connect within this (TrafficPolicy `timeouts.connect`). */
      readonly connectMs?: number;
      /** The stream is cut after this long with no bytes either way (TrafficPolicy `timeouts.idle`). */
      readonly idleMs?: number;
    },
  ): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const pooled = this.pool.session(target, limits.connectMs);
      this.countInFlight(target.key, 1);
      let committed = false;
      let settled = false;
      let perTry: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(perTry);
        limits.expiry?.removeEventListener('abort', expired);
        this.countInFlight(target.key, -1);
      };
      // The request's time is up: a try not answered yet ends with 504; an answer under way is cut.
      function expired(): void {
        if (committed) return void exchange.abort();
        stream.close(http2.constants.NGHTTP2_CANCEL);
        done();
        reject(new TimedOut('request'));
      }
      let stream: http2.ClientHttp2Stream;
      if (limits.expiry?.aborted) {
        done();
        return reject(new TimedOut('request'));
      }
      try {
        // A request without a body ends with its HEADERS frame.
        stream = pooled.session.request(headers, { endStream: body === undefined });
      } catch (error) {
        done();
        return reject(new RetryableFailure((error as Error).message, true));
      }
      exchange.cancelWhenGone(stream);
      if (limits.idleMs !== undefined)
        stream.setTimeout(limits.idleMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      limits.expiry?.addEventListener('abort', expired, { once: true });
      if (limits.perTryMs !== undefined)
        perTry = setTimeout(() => {
          if (committed || settled) return;
          body?.hold();
          stream.close(http2.constants.NGHTTP2_CANCEL);
          done();
          // A try that took too long counts as a 504 (gRPC DEADLINE_EXCEEDED) for retries.
          reject(
            retryAnswer(504, limits.grpc ? String(GRPC.DEADLINE_EXCEEDED) : '')
              ? new RetriedAnswer('per-try-timeout', 'reset')
              : new TimedOut('per-try'),
          );
        }, limits.perTryMs);
      stream.on('error', (error: Error) => {
        done();
        if (committed) return void exchange.abort();
        // Safe to send again: the target was never reached, the peer said it did not
        // process the stream (GOAWAY with a lower last stream id, REFUSED_STREAM), or the
        // method is idempotent. A target that could not be reached is ejected for a while.
        const unprocessed =
          !pooled.connected ||
          (pooled.lastStreamId !== undefined && (stream.id ?? Infinity) > pooled.lastStreamId) ||
          (stream.rstCode ?? 0) === http2.constants.NGHTTP2_REFUSED_STREAM;
        if (unprocessed || IDEMPOTENT.has(String(headers[':method'])))
          reject(new RetryableFailure(error.message, !pooled.connected, pooled.connected));
        else reject(error);
      });
      stream.on('response', (upstream, flags) => {
        const status = Number(upstream[':status']);
        if (status === 503 && upstream[UPSTREAM_FAILURE]) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          done();
          return reject(
            new RetryableFailure(
              `the app there is unreachable (${String(upstream[UPSTREAM_FAILURE])})`,
              true,
              false,
              'gateway',
            ),
          );
        }
        // A trailers-only answer (how gRPC answers errors) carries its gRPC status here.
        const ended = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        const grpcStatus = ended ? String(upstream['grpc-status'] ?? '') : '';
        if (retryAnswer(status, grpcStatus)) {
          body?.hold();
          stream.close(http2.constants.NGHTTP2_CANCEL);
          done();
          // The reason label: a gRPC status retries name (1, 4, 8, 14), else the HTTP status.
          return reject(
            new RetriedAnswer(
              RETRIED_GRPC.has(grpcStatus) ? grpcStatus : String(status),
              resultOfAnswer(status, grpcStatus),
            ),
          );
        }
        committed = true;
        clearTimeout(perTry);
        body?.commit();
        void exchange.relay(stream, upstream, flags).then((outcome) => {
          done();
          resolve(outcome);
        });
      });
      // Closed with neither an answer nor an error (cancelled): the attempt is over.
      stream.once('close', () => {
        if (committed || settled) return;
        done();
        reject(new Error(`the stream closed unanswered (code ${stream.rstCode ?? 0})`));
      });
      try {
        body?.sendTo(stream);
      } catch (error) {
        // The body grew past what is kept while a retry waited: it cannot be sent again.
        stream.close(http2.constants.NGHTTP2_CANCEL);
        done();
        reject(new Unsendable((error as Error).message));
      }
    });
  }
}

/**
 * The name of the service a request went to, for metrics: the destination's own
 * (cluster-local for a Service that is not exported), or the clusterset name of the
 * backend a route chose.
 */
function backendName(destination: Destination, routed: RoutedBackend): string {
  return routed.name === destination.service.name && routed.namespace === destination.service.namespace
    ? destination.service.hostname
    : `${routed.name}.${routed.namespace}.svc.clusterset.local`;
}

/**
 * One HBONE tunnel lent to a caller (an app's CONNECT, or the destination of an app's
 * HTTP/1.1 connection): bytes written go to the app behind the target; its TCP metrics are
 * recorded when it closes.
 */
export interface TunnelLease {
  /** The service port it reaches (`namespace/name:port`). */
  readonly key: string;
  readonly target: Target;
  /** Lent for a target other than the balancer's first pick (that one refused it). */
  readonly fallback: boolean;
  /** Lent out before (from the idle pool): its peer may have closed it meanwhile. */
  readonly reused: boolean;
  /** Closed or closing: no more exchanges. */
  readonly closed: boolean;
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): void;
  /**
   * Who gets what comes back, and the end of the tunnel (why, for a failure), until the
   * next `attach`. Bytes that come while nobody is attached (an idle tunnel) end it.
   */
  attach(handler: LeaseHandler | undefined): void;
  pause(): void;
  resume(): void;
  /** From here on the tunnel and `socket` exchange bytes as they are, `first` going first. */
  splice(socket: Duplex, first: Buffer): void;
  /** Ends the tunnel: `abort` resets it (an exchange was cut short), otherwise a clean end. */
  release(abort: boolean): void;
}

/** What a tunnel's borrower is told. */
export interface LeaseHandler {
  data(chunk: Buffer): void;
  end(error?: string): void;
}

class StreamLease implements TunnelLease {
  closed = false;
  fallback = false;
  /** Times lent out (the first when it opened). */
  private lends = 0;
  private sent = 0;
  private received = 0;
  private handler: LeaseHandler | undefined;
  private endedWith: { error?: string } | undefined;
  /** Told when the tunnel ends (the idle pool forgets it). */
  onEnded: (() => void) | undefined;
  /** While idle in the pool: when it is closed for being idle too long. */
  idleTimer: NodeJS.Timeout | undefined;
  /** Paused for a slow reader. */
  paused = false;
  /** Counted as in flight to its target (lent out, not idle in the pool, not ended). */
  private counted = false;

  constructor(
    readonly key: string,
    readonly target: Target,
    private readonly stream: http2.ClientHttp2Stream,
    private readonly connections: ConnectionMetrics,
    private readonly countInFlight: (targetKey: string, delta: number) => void,
    private readonly labels: Parameters<ConnectionMetrics['open']>[0],
    /** Counts it in use under its destination's circuit breaker (maxConnections). */
    private readonly countConnection?: (delta: number) => void,
  ) {
    connections.open(labels);
    this.busy(true);
    stream.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.handler) this.handler.data(chunk);
      else this.release(true);
    });
    const end = (error?: string): void => {
      if (this.endedWith) return;
      this.closed = true;
      clearTimeout(this.idleTimer);
      // The far side ended: ours ends too, so the stream closes and its counts are released.
      if (!stream.destroyed && !stream.writableEnded) stream.end();
      this.endedWith = error === undefined ? {} : { error };
      this.onEnded?.();
      this.handler?.end(error);
    };
    stream.once('end', () => end());
    stream.once('error', (error) => end(error.message));
    stream.once('close', () => {
      this.busy(false);
      end(stream.rstCode ? `the tunnel was reset (code ${stream.rstCode})` : undefined);
      connections.close({ ...labels, sentBytes: this.sent, receivedBytes: this.received });
    });
    // Closed between its 200 and now (the answer and a reset in one read).
    if (stream.destroyed) end('the tunnel closed as it opened');
  }

  get reused(): boolean {
    return this.lends > 1;
  }

  /** Lent out (true) or back in the idle pool (false); counted once either way. */
  busy(busy: boolean): void {
    if (busy === this.counted || (busy && this.stream.destroyed)) return;
    this.counted = busy;
    if (busy) this.lends++;
    this.countInFlight(this.target.key, busy ? 1 : -1);
    this.countConnection?.(busy ? 1 : -1);
  }

  write(chunk: Buffer): boolean {
    this.sent += chunk.length;
    return this.stream.write(chunk);
  }

  once(event: 'drain', listener: () => void): void {
    this.stream.once(event, listener);
  }

  attach(handler: LeaseHandler | undefined): void {
    this.handler = handler;
    if (handler && this.endedWith) handler.end(this.endedWith.error);
  }

  pause(): void {
    this.paused = true;
    this.stream.pause();
  }

  resume(): void {
    this.paused = false;
    this.stream.resume();
  }

  splice(socket: Duplex, first: Buffer): void {
    this.stream.removeAllListeners('data');
    this.stream.on('data', (chunk: Buffer) => (this.received += chunk.length));
    socket.on('data', (chunk: Buffer) => (this.sent += chunk.length));
    if (first.length > 0) this.write(first);
    splice(socket, this.stream, () => {});
  }

  release(abort: boolean): void {
    // The borrower is done with it: it is no longer in flight, whenever its stream closes.
    this.busy(false);
    if (this.stream.destroyed) return;
    this.closed = true;
    if (abort) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    else this.stream.end();
  }
}
