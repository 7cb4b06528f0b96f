import { X509Certificate } from 'node:crypto';
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import { Counter } from 'prom-client';
import type { TLSSocket } from 'node:tls';
import { dataPlaneMode, type ProxyConfig } from '@causeway/discovery';
import { PkiError, peerIdentity, type VerifiedIdentity } from '@causeway/pki';
import { AppForwarder } from './app-forwarder.ts';
import { authorize, policiesFor, type CallFacts, type Decision } from './authz.ts';
import { headerValue, normalizePath } from '@causeway/http';
import { InboundH1Tunnel } from './inbound-h1.ts';
import { endToEnd, fieldsOf, GRPC, headerFieldCount, isGrpc, MAX_REQUEST_HEADERS } from './http-util.ts';
import { failStream, UPSTREAM_FAILURE } from './responses.ts';
import { DEFAULT_SIDECAR_TIMEOUTS, type InboundPort, type SidecarOptions } from './sidecar-options.ts';
import type { ConnectionMetrics, RequestMetrics } from './telemetry.ts';
import { FRAMING, L7_REQUIRED, PER_REQUEST, splice } from './tunnel.ts';

type Service = ProxyConfig['services'][number];

/**
 * Where an admitted connection keeps its caller: a property of the TLS socket, which reads
 * the same through the socket stand-in Node's HTTP/2 sessions hand out.
 */
const CALLER = Symbol('causeway.caller');
type AdmittedSocket = TLSSocket & { [CALLER]?: VerifiedIdentity };

/**
 * The sidecar's inbound side: a request that arrived over mTLS has its caller's SPIFFE ID
 * checked, the AuthorizationPolicies of the services its port serves applied (DENY first,
 * then ALLOW), and goes to the app with the caller in `x-forwarded-client-cert`.
 */
export class InboundProxy {
  private readonly app: AppForwarder;
  /** Per inbound port, the services it serves (computed once per config). */
  private servedByPort = new Map<number, readonly Service[]>();
  private servedFor: ProxyConfig | undefined;
  private rootsFor: { pems: readonly string[]; roots: X509Certificate[] } | undefined;
  private readonly refusals: Counter<'reason'>;
  /** Upgraded connections of framed tunnels (WebSocket), with the request that was allowed; re-checked on each new config. */
  private readonly upgrades = new Map<
    () => void,
    { listening: number; caller: VerifiedIdentity; method: string; path: string; headers: readonly string[] }
  >();
  /** Open L4 connections, with what they were admitted for (re-checked on each new config). */
  private readonly tunnels = new Map<
    ServerHttp2Stream,
    { service: Service; listening: number; caller: VerifiedIdentity }
  >();

  constructor(
    private readonly options: SidecarOptions,
    private readonly metrics: RequestMetrics,
    private readonly connections: ConnectionMetrics,
  ) {
    this.app = new AppForwarder(options.appHost);
    this.refusals = new Counter({
      name: 'causeway_inbound_tls_refusals_total',
      help: 'Inbound mTLS connections closed as their handshake completed: the client certificate is not a valid SVID of this trust domain.',
      labelNames: ['reason'],
      registers: options.registry ? [options.registry] : [],
    });
  }

  /**
   * Checks the client certificate of a connection whose TLS handshake has just completed,
   * before any byte of it is read: OpenSSL has verified the chain; this adds the SPIFFE
   * rules (exactly one URI SAN, `spiffe://` in this trust domain, a leaf that is no CA,
   * issued by a cluster intermediate). A connection that fails them is to be closed at once.
   */
  admit(socket: TLSSocket): boolean {
    try {
      (socket as AdmittedSocket)[CALLER] = peerIdentity(socket, {
        roots: this.roots(),
        trustDomain: this.options.trustDomain,
      });
      return true;
    } catch (error) {
      const reason = error instanceof PkiError ? error.code : 'CAUSEWAY_PKI_BAD_INPUT';
      this.refusals.inc({ reason });
      this.options.log?.('warn', 'inbound connection refused: not a mesh identity', {
        reason,
        err: (error as Error).message,
        peer: socket.remoteAddress,
      });
      return false;
    }
  }

  /**
   * One HTTP/2 stream on inbound `port`, whose listener got port `listening`, served through
   * the core API (no compatibility objects): a CONNECT is a tunnel; anything else one request.
   */
  async stream(
    port: InboundPort,
    listening: number,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    rawHeaders: readonly string[],
  ): Promise<void> {
    if (headers[':method'] === 'CONNECT') return this.tunnel(port, listening, stream, headers);
    const started = process.hrtime.bigint();
    const config = this.options.config();
    const grpc = isGrpc(headers);
    const fail = (status: number, message: string): void => failStream(stream, grpc, status, message);
    // Every connection was admitted as its handshake completed; none other gets this far.
    const caller = callerOfStream(stream);
    if (!caller) return fail(403, 'not a mesh identity');
    const destinationService = config
      ? (this.served(config, listening)[0]?.hostname ?? 'unknown')
      : 'unknown';
    const method = String(headers[':method'] ?? 'GET');
    const path = String(headers[':path'] ?? '');
    const record = (status: number, grpcStatus: string): void =>
      this.recordExchange(caller, destinationService, {
        method,
        path,
        status,
        grpcStatus: grpc ? grpcStatus : undefined,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        traceparent: headers.traceparent,
      });
    const fields = headerFieldCount(rawHeaders);
    if (fields > MAX_REQUEST_HEADERS) {
      fail(431, `${fields} header fields; at most ${MAX_REQUEST_HEADERS} are accepted`);
      return record(431, grpc ? String(GRPC.INTERNAL) : '');
    }
    if (!config) {
      // Without a config the policies are unknown: nothing is let in (fail closed).
      fail(503, 'no config from the controller yet');
      return record(503, grpc ? String(GRPC.UNAVAILABLE) : '');
    }
    // Authorization sees exactly what the app will get: an upper-case method and a
    // normalized origin-form target (or a 400 naming what is wrong with it).
    if (!/^[A-Z]+$/.test(method)) {
      fail(400, 'the method must be upper case');
      return record(400, grpc ? String(GRPC.INTERNAL) : '');
    }
    const normalized = normalizePath(path, this.options.pathNormalization);
    if (!normalized.ok) {
      fail(400, `${normalized.code}: ${normalized.reason}`);
      return record(400, grpc ? String(GRPC.INTERNAL) : '');
    }
    const target = normalized.target;
    const decision = this.decide(config, listening, caller, method, target, headers);
    if (!decision.allowed) {
      fail(403, `RBAC: access denied (${decision.policy}: ${decision.reason})`);
      return record(403, grpc ? String(GRPC.PERMISSION_DENIED) : '');
    }
    // The caller is ours to state: any header an app could read as the client certificate
    // (underscore spellings included, as CGI-style servers merge them) is dropped first.
    const spoofable = Object.keys(headers).filter(
      (name) => name.replace(/_/g, '-') === 'x-forwarded-client-cert' || name === UPSTREAM_FAILURE,
    );
    const forwarded = {
      ...endToEnd(headers, spoofable),
      'x-forwarded-client-cert': this.clientCert(caller),
    };
    const authority = String(headers[':authority'] ?? headers.host ?? '');
    // A request whose HEADERS frame ended the stream has no body.
    const empty = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const outcome =
      port.appProtocol === 'h2c'
        ? await this.app.h2Stream(
            port.appPort,
            stream,
            { ...forwarded, ':method': method, ':path': target, ':authority': authority, ':scheme': 'http' },
            empty,
          )
        : await this.app.h1Stream(port.appPort, stream, method, forwarded, target, authority, empty);
    record(outcome.status, outcome.grpcStatus);
  }

  /**
   * Authorization of one request under the AuthorizationPolicies of the services served on
   * the port (DENY first, then ALLOW). A workload that serves no known service in a
   * namespace with policies is refused: which policies apply cannot be told (fail closed).
   */
  private decide(
    config: ProxyConfig,
    listening: number,
    caller: VerifiedIdentity,
    method: string,
    path: string,
    headers: CallFacts['headers'],
  ): Decision {
    const services = this.served(config, listening).map((service) => service.name);
    if (
      services.length === 0 &&
      config.policies.some((p) => p.kind === 'AuthorizationPolicy' && p.namespace === this.options.namespace)
    )
      return {
        allowed: false,
        policy: this.options.namespace,
        reason: 'this workload serves no known service',
      };
    const spiffe = caller.spiffeId;
    return authorize(policiesFor(config, this.options.namespace, services), {
      principal: spiffe.uri,
      namespace: spiffe.kind === 'workload' ? spiffe.namespace : undefined,
      cluster: caller.cluster,
      method,
      path,
      headers,
    });
  }

  /** One request's metrics and access-log line. */
  private recordExchange(
    caller: VerifiedIdentity,
    destinationService: string,
    entry: {
      method: string | undefined;
      path: string | undefined;
      status: number;
      grpcStatus?: string;
      seconds: number;
      traceparent: unknown;
      mode?: 'L7';
    },
  ): void {
    const spiffe = caller.spiffeId;
    this.metrics.record({
      reporter: 'destination',
      sourceCluster: caller.cluster,
      sourceWorkload: spiffe.kind === 'workload' ? spiffe.serviceAccount : spiffe.uri,
      destinationCluster: this.options.cluster,
      destinationService,
      responseCode: entry.status,
      grpcStatus: entry.grpcStatus ?? '',
      seconds: entry.seconds,
    });
    this.options.accessLog?.({
      reporter: 'destination',
      ...(entry.mode ? { mode: entry.mode } : {}),
      method: entry.method,
      path: entry.path,
      status: entry.status,
      grpcStatus: entry.grpcStatus,
      durationMs: Math.round(entry.seconds * 100_000) / 100,
      sourcePrincipal: spiffe.uri,
      sourceCluster: caller.cluster,
      destinationService,
      traceparent: entry.traceparent,
    });
  }

  /** The `x-forwarded-client-cert` value the app gets: this workload and its caller. */
  private clientCert(caller: VerifiedIdentity): string {
    return `By=${this.options.credentials().spiffeId};URI=${caller.spiffeId.uri}`;
  }

  /**
   * A tunnel (HBONE): an HTTP/2 CONNECT stream naming a service this port serves
   * (`hostname:port`), carried to a new connection to the app. On an L4 port the caller is
   * authorized by identity and the bytes are spliced. A port that needs L7 here (a path,
   * method or header rule) takes a tunnel whose caller framed it as HTTP/1.1 exchanges
   * (`x-causeway-framing: http/1.1`) and authorizes each request in it (`InboundH1Tunnel`);
   * any other tunnel is refused with a marker, and the caller carries its requests one by
   * one over HTTP/2 instead. A framed tunnel whose caller asks for it (`PER_REQUEST`: the
   * ingress gateway) is served that way on an L4 port too, and the `200` says so; to an h2c
   * app it is refused with the marker.
   */
  private tunnel(
    port: InboundPort,
    listening: number,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
  ): void {
    const caller = callerOfStream(stream);
    const refuse = (status: number, message: string, extra: Record<string, string> = {}): void => {
      if (stream.destroyed || stream.headersSent) return;
      stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', ...extra });
      stream.end(`${message}\n`);
    };
    const config = this.options.config();
    if (!caller) return refuse(403, 'not a mesh identity');
    if (!config) return refuse(503, 'no config from the controller yet');
    const authority = String(headers[':authority'] ?? '');
    const colon = authority.lastIndexOf(':');
    const host = authority.slice(0, colon);
    const servicePort = Number(authority.slice(colon + 1));
    // HTTP/1.1 exchanges framed by the caller (read here only for an app that speaks HTTP/1.1).
    const framed = headers[FRAMING] === 'http/1.1' && port.appProtocol !== 'h2c';
    const perRequest = headers[FRAMING] === 'http/1.1' && headers[PER_REQUEST] === '1';
    /** How a config takes this tunnel: carried as bytes (L4), framed (L7), or refused. */
    const admission = (
      config: ProxyConfig,
    ):
      | { readonly l7: boolean; readonly service: Service }
      | { readonly status: number; readonly message: string; readonly extra?: Record<string, string> } => {
      // Every Service served on this port: their policies all apply, as they do per request.
      const served = this.served(config, listening);
      const service = served.find(
        (s) =>
          (s.hostname === host || `${s.name}.${s.namespace}.svc.clusterset.local` === host) &&
          s.ports.some((p) => p.port === servicePort),
      );
      if (colon < 0 || !service) return { status: 404, message: `${authority} is not served here` };
      // Served per request when the port needs it, or the caller asked for it.
      const l7 = this.needsL7(config, served) || perRequest;
      if (l7 && !framed)
        return { status: 421, message: `${authority} needs L7 here`, extra: { [L7_REQUIRED]: '1' } };
      if (!l7) {
        const decision = this.authorizeConnection(config, served, caller);
        if (!decision.allowed)
          return { status: 403, message: `RBAC: access denied (${decision.policy}: ${decision.reason})` };
      }
      return { l7, service };
    };
    const admitted = admission(config);
    if ('status' in admitted) return refuse(admitted.status, admitted.message, admitted.extra);
    const spiffe = caller.spiffeId;
    const labels = {
      reporter: 'destination' as const,
      sourceCluster: caller.cluster,
      sourceWorkload: spiffe.kind === 'workload' ? spiffe.serviceAccount : spiffe.uri,
      destinationCluster: this.options.cluster,
      destinationService: admitted.service.hostname,
    };
    const app = net.connect({ host: this.options.appHost, port: port.appPort, noDelay: true });
    const unreachable = (error: Error): void =>
      refuse(503, `the app is unreachable: ${error.message}`, { [UPSTREAM_FAILURE]: 'connect' });
    app.once('error', unreachable);
    // An app that never accepts: the caller goes elsewhere rather than wait.
    const connectMs = this.options.timeouts?.appConnectMs ?? DEFAULT_SIDECAR_TIMEOUTS.appConnectMs;
    app.setTimeout(connectMs, () => {
      if (app.connecting) app.destroy(new Error(`no connection within ${connectMs} ms`));
    });
    // The caller gave up before the app answered.
    stream.once('close', () => {
      if (app.connecting) app.destroy();
    });
    app.once('connect', () => {
      app.off('error', unreachable);
      app.setTimeout(0);
      if (stream.destroyed) return void app.destroy();
      // A config that came while the app was being reached decides (no tunnel outlives one).
      const now = this.options.config();
      let current = admitted;
      if (now && now !== config) {
        const again = admission(now);
        if ('status' in again) {
          app.destroy();
          return refuse(again.status, again.message, again.extra);
        }
        current = again;
      }
      const { l7, service } = current;
      // (Served per request as asked: said in the answer, so that the caller knows.)
      stream.respond(perRequest ? { ':status': 200, [PER_REQUEST]: '1' } : { ':status': 200 });
      this.connections.open(labels);
      const opened = process.hrtime.bigint();
      if (l7) return this.framed(stream, app, listening, caller, service.hostname, labels);
      this.tunnels.set(stream, { service, listening, caller });
      splice(stream, app, () => {
        this.tunnels.delete(stream);
        this.connections.close({ ...labels, sentBytes: app.bytesWritten, receivedBytes: app.bytesRead });
        // One line per connection (L4 reads no requests).
        this.options.accessLog?.({
          reporter: 'destination',
          mode: 'L4',
          sourcePrincipal: spiffe.uri,
          sourceCluster: caller.cluster,
          destinationService: service.hostname,
          sentBytes: app.bytesWritten,
          receivedBytes: app.bytesRead,
          durationMs: Math.round(Number(process.hrtime.bigint() - opened) / 10_000) / 100,
        });
      });
    });
  }

  /** Serves a framed tunnel to an L7 port: each request in it is authorized on its own. */
  private framed(
    stream: ServerHttp2Stream,
    app: net.Socket,
    listening: number,
    caller: VerifiedIdentity,
    destinationService: string,
    labels: Parameters<ConnectionMetrics['open']>[0],
  ): void {
    new InboundH1Tunnel(
      stream,
      app,
      {
        pathNormalization: this.options.pathNormalization,
        requestHeadMs: this.options.timeouts?.requestHeadMs ?? DEFAULT_SIDECAR_TIMEOUTS.requestHeadMs,
        idleMs: this.options.timeouts?.idleMs ?? DEFAULT_SIDECAR_TIMEOUTS.idleMs,
        clientCert: this.clientCert(caller),
        upgraded: (upgrade, cut) => {
          this.upgrades.set(cut, { listening, caller, ...upgrade });
          return () => this.upgrades.delete(cut);
        },
        authorize: (method, path, headers) => {
          // The config in force for this request: a policy applies from the next request on.
          const config = this.options.config();
          if (!config) return 'no config from the controller yet';
          const decision = this.decide(config, listening, caller, method, path, fieldsOf(headers));
          return decision.allowed ? undefined : `${decision.policy}: ${decision.reason}`;
        },
        record: (entry) =>
          this.recordExchange(caller, destinationService, {
            ...entry,
            mode: 'L7',
            traceparent: headerValue(entry.headers, 'traceparent'),
          }),
      },
      () => this.connections.close({ ...labels, sentBytes: app.bytesWritten, receivedBytes: app.bytesRead }),
    );
  }

  /**
   * A new config: an open L4 connection that it would no longer admit (its service port
   * needs L7 now, or its caller is no longer authorized) is cut, so that no connection made
   * before a policy outlives it. (The caller's sidecar sends an idempotent request that was
   * in flight on plain HTTP/1.1 again, per request if the port needs L7 now; an app's own
   * CONNECT connection is opaque and is reset: security over the request in flight.)
   */
  configChanged(config: ProxyConfig): void {
    for (const [stream, { service, listening, caller }] of this.tunnels) {
      const served = this.served(config, listening);
      const l7 = this.needsL7(config, served);
      if (!l7 && this.authorizeConnection(config, served, caller).allowed) continue;
      this.options.log?.('info', 'L4 connection cut: the new config no longer admits it', {
        service: service.hostname,
        caller: caller.spiffeId.uri,
        reason: l7 ? 'the service port needs L7' : 'not authorized',
      });
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    }
    // Upgraded requests (WebSocket) last as long as the request would still be allowed.
    for (const [cut, { listening, caller, method, path, headers }] of this.upgrades) {
      const served = this.served(config, listening);
      const allowed = this.needsL7(config, served)
        ? this.decide(config, listening, caller, method, path, fieldsOf(headers)).allowed
        : this.authorizeConnection(config, served, caller).allowed;
      if (allowed) continue;
      this.options.log?.('info', 'upgraded connection cut: the new config no longer allows it', {
        path,
        caller: caller.spiffeId.uri,
      });
      this.upgrades.delete(cut);
      cut();
    }
  }

  /** Whether a Service served on the port needs L7 on any of its ports. */
  private needsL7(config: ProxyConfig, served: readonly Service[]): boolean {
    return served.some((s) =>
      s.ports.some((p) => dataPlaneMode(config, s.namespace, s.name, p.port).mode === 'L7'),
    );
  }

  /**
   * Authorization by identity alone (an L4 connection has no paths, methods or headers),
   * under the policies of every Service served on the port.
   */
  private authorizeConnection(config: ProxyConfig, served: readonly Service[], caller: VerifiedIdentity) {
    const spiffe = caller.spiffeId;
    const names = served.map((s) => s.name);
    return authorize(policiesFor(config, this.options.namespace, names), {
      principal: spiffe.uri,
      namespace: spiffe.kind === 'workload' ? spiffe.namespace : undefined,
      cluster: caller.cluster,
      method: 'CONNECT',
      path: '',
      headers: {},
    });
  }

  /** Closes the connections to the app (after the requests that used them have finished). */
  close(): void {
    this.app.close();
  }

  /**
   * The services an inbound port serves: those whose local endpoints include this workload's
   * address and that port (their AuthorizationPolicies apply to its requests, no others).
   */
  private served(config: ProxyConfig, listening: number): readonly Service[] {
    if (this.servedFor !== config) {
      this.servedFor = config;
      this.servedByPort = new Map();
    }
    let services = this.servedByPort.get(listening);
    if (!services) {
      services = config.services.filter(
        (service) =>
          service.namespace === this.options.namespace &&
          service.backends.some(
            (backend) =>
              backend.kind === 'local' &&
              backend.endpoints.some(
                (endpoint) =>
                  endpoint.address === this.options.workloadAddress &&
                  endpoint.ports.some((p) => p.port === listening),
              ),
          ),
      );
      this.servedByPort.set(listening, services);
    }
    return services;
  }

  private roots(): X509Certificate[] {
    const pems = this.options.credentials().roots;
    if (this.rootsFor?.pems !== pems)
      this.rootsFor = { pems, roots: pems.map((pem) => new X509Certificate(pem)) };
    return this.rootsFor.roots;
  }
}

/** The verified caller of a request's connection (set when it was admitted). */
function callerOfStream(stream: ServerHttp2Stream): VerifiedIdentity | undefined {
  return (stream.session?.socket as AdmittedSocket | undefined)?.[CALLER];
}
