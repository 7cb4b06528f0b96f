import { X509Certificate } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '@causeway/discovery';
import type { WorkloadCredentials } from '@causeway/identity';
import { peerIdentity, type VerifiedIdentity } from '@causeway/pki';
import { authorize, policiesFor } from './authz.ts';
import {
  endToEnd,
  GRPC,
  grpcStatusForHttp,
  hasNoBody,
  isGrpc,
  normalizeTarget,
  ReplayableBody,
} from './http-util.ts';
import {
  loadBalancerOf,
  resolveDestination,
  routeRequest,
  targetsFor,
  type Target,
  type Targets,
} from './routing.ts';
import { RequestMetrics } from './telemetry.ts';
import { UpstreamPool } from './upstreams.ts';

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

/** One inbound port: the mTLS listener peers reach, and the app port behind it. */
export interface InboundPort {
  readonly name?: string;
  /** The mTLS listener's port (0: any free port). */
  readonly port: number;
  readonly appPort: number;
  /** How the app speaks: HTTP/1.1, or HTTP/2 cleartext (gRPC). */
  readonly appProtocol: 'http' | 'h2c';
}

export interface SidecarOptions {
  readonly cluster: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly credentials: () => WorkloadCredentials;
  readonly config: () => ProxyConfig | undefined;
  /** Where the app listens. */
  readonly appHost: string;
  readonly inbound: readonly InboundPort[];
  /** The address the inbound listeners bind (default all interfaces). */
  readonly inboundHost?: string;
  /** The address peers reach this workload at (its endpoint address in the catalog). */
  readonly workloadAddress: string;
  readonly outbound: { readonly host: string; readonly port: number };
  /** Request bodies up to this size are kept for a retry on another endpoint (default 64 KiB). */
  readonly retryBufferBytes?: number;
  readonly registry?: Registry;
  readonly accessLog?: (entry: Record<string, unknown>) => void;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** A target that refused a connection is tried last for this long. */
const EJECTION_MS = 10_000;
/** Different targets tried for one request at most. */
const MAX_ATTEMPTS = 4;
/** Marks an inbound 503 that means "the app could not be reached": the caller may go elsewhere. */
const UPSTREAM_FAILURE = 'x-causeway-upstream-failure';
const H2_PREFACE = 'PRI * HTTP/2.0';

/** A failure before any response byte: the next target may be tried. */
class RetryableFailure extends Error {
  constructor(
    message: string,
    readonly eject: boolean,
    /** The connection was lost, not refused: a new one to the same target may work. */
    readonly reconnect = false,
  ) {
    super(message);
  }
}

/** Methods that may be sent again after a failure (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * The sidecar: the app's outbound proxy (HTTP/1.1 and HTTP/2 cleartext on one port, routed
 * by authority and the mesh routes, nearest endpoints first, other clusters through their
 * east-west gateways when the local ones are gone or failing) and its inbound mTLS
 * listeners (the caller's SPIFFE ID checked, AuthorizationPolicies applied, the request
 * forwarded to the app with the caller in `x-forwarded-client-cert`).
 */
export class Sidecar {
  private readonly pool: UpstreamPool;
  private readonly metrics: RequestMetrics;
  private readonly ejectedUntil = new Map<string, number>();
  private readonly roundRobin = new Map<string, number>();
  private readonly outboundServer: net.Server;
  private readonly outboundH1: http.Server;
  private readonly outboundH2: http2.Http2Server;
  private readonly inboundServers: http2.Http2SecureServer[] = [];
  private readonly inboundSessions = new Set<http2.ServerHttp2Session>();
  private readonly outboundSessions = new Set<http2.ServerHttp2Session>();
  private readonly identities = new WeakMap<object, VerifiedIdentity>();
  private readonly appAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly appSessions = new Map<number, http2.ClientHttp2Session>();
  /** Per inbound port, the services it serves (computed once per config). */
  private servedByPort = new Map<number, readonly ProxyConfig['services'][number][]>();
  private servedFor: ProxyConfig | undefined;
  private inboundPorts: number[] = [];
  private rootsFor: { pems: readonly string[]; roots: X509Certificate[] } | undefined;
  /** The app's HTTP/1.1 connections to the outbound port, with their responses in progress. */
  private readonly h1Connections = new Map<net.Socket, Set<ServerResponse>>();
  private stopping = false;

  constructor(private readonly options: SidecarOptions) {
    this.pool = new UpstreamPool(options.credentials, (message, fields) =>
      options.log?.('warn', message, fields),
    );
    this.metrics = new RequestMetrics(options.registry);
    const handler = (request: Request, response: Response): void => {
      if (response instanceof http.ServerResponse) this.trackH1(request.socket as net.Socket, response);
      this.outbound(request, response).catch((error: unknown) =>
        this.fail(request, response, 500, String(error)),
      );
    };
    // Node's HTTP/1 parser refuses request smuggling (Content-Length with Transfer-Encoding),
    // obs-fold and oversized headers (431) before a request exists: nothing is forwarded.
    this.outboundH1 = http.createServer({ keepAliveTimeout: 65_000 }, handler);
    this.outboundH2 = http2.createServer({}, handler);
    // The app's HTTP/2 connections (gRPC) are told to finish and go when the sidecar stops.
    this.outboundH2.on('session', (session: http2.ServerHttp2Session) => {
      this.outboundSessions.add(session);
      session.once('close', () => this.outboundSessions.delete(session));
    });
    this.outboundServer = net.createServer({ noDelay: true }, (socket) => this.sniff(socket));
  }

  /** Starts the outbound and inbound listeners; resolves with the ports they got. */
  async listen(): Promise<{ outbound: number; inbound: number[] }> {
    const listen = (server: net.Server, host: string, port: number): Promise<number> =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as net.AddressInfo).port);
        });
      });
    const outbound = await listen(
      this.outboundServer,
      this.options.outbound.host,
      this.options.outbound.port,
    );
    const credentials = this.options.credentials();
    for (const port of this.options.inbound) {
      // The port it got (the settings may say 0: any free port).
      const bound = { port: port.port };
      const server = http2.createSecureServer(
        {
          allowHTTP1: true,
          key: credentials.privateKeyPem,
          cert: credentials.certificateChainPem,
          ca: [...credentials.roots],
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.3',
          ALPNProtocols: ['h2', 'http/1.1'],
          noDelay: true,
        },
        (request: Request, response: Response) => {
          this.inbound(port, bound.port, request, response).catch((error: unknown) =>
            this.fail(request, response, 500, String(error)),
          );
        },
      );
      server.on('secureConnection', (socket: TLSSocket) => socket.setNoDelay(true));
      // Tracked so that a stop can tell each peer to finish and go (GOAWAY).
      server.on('session', (session) => {
        session.on('error', (error) =>
          this.options.log?.('warn', 'inbound session error', { err: error.message }),
        );
        session.on('frameError', (type, code) =>
          this.options.log?.('warn', 'inbound frame error', { type, code }),
        );
        this.inboundSessions.add(session);
        session.once('close', () => this.inboundSessions.delete(session));
      });
      this.inboundServers.push(server);
      bound.port = await listen(server, this.options.inboundHost ?? '0.0.0.0', port.port);
      this.inboundPorts.push(bound.port);
    }
    return { outbound, inbound: this.inboundPorts };
  }

  /** New credentials: new inbound handshakes use them (open connections keep theirs). */
  renewed(credentials: WorkloadCredentials): void {
    for (const server of this.inboundServers)
      server.setSecureContext({
        key: credentials.privateKeyPem,
        cert: credentials.certificateChainPem,
        ca: [...credentials.roots],
      });
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
    for (const [key, until] of this.ejectedUntil)
      if (until <= now || !keys.has(key)) this.ejectedUntil.delete(key);
    const ports = new Set(
      config.services.flatMap((service) =>
        service.ports.map((port) => `${service.namespace}/${service.name}:${port.port}`),
      ),
    );
    for (const key of this.roundRobin.keys()) if (!ports.has(key)) this.roundRobin.delete(key);
  }

  /**
   * Stops gracefully: no new connections; peers are told to finish their requests here
   * and send new ones elsewhere (HTTP/2 GOAWAY), and requests in flight complete (up to 5 s).
   */
  async close(): Promise<void> {
    this.stopping = true;
    // HTTP/1.1 has no GOAWAY: idle connections are closed, busy ones say `Connection: close`
    // on their last response and close after it.
    for (const [socket, responses] of this.h1Connections) {
      if (responses.size === 0) socket.end();
      for (const response of responses) if (!response.headersSent) response.shouldKeepAlive = false;
    }
    const closing = [this.outboundServer, ...this.inboundServers].map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    for (const session of [...this.inboundSessions, ...this.outboundSessions]) session.close();
    await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    // Only now: requests still in flight used these connections to peers and to the app.
    this.pool.close();
    for (const session of this.appSessions.values()) session.close();
    this.appAgent.destroy();
  }

  /** One outbound port for both protocols: the HTTP/2 connection preface decides. */
  private sniff(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      const head = Buffer.concat(chunks);
      const seen = head.toString('latin1', 0, Math.min(head.length, H2_PREFACE.length));
      // Undecided while what arrived is still a prefix of the preface.
      if (seen.length < H2_PREFACE.length && H2_PREFACE.startsWith(seen)) return;
      socket.off('data', onData);
      socket.pause();
      if (seen === H2_PREFACE) {
        // HTTP/2 takes the native handle of a socket and would lose the bytes already read:
        // it gets a stream that replays them.
        const replay = new PassThrough();
        replay.write(head);
        socket.pipe(replay);
        const stream = Duplex.from({ readable: replay, writable: socket });
        socket.once('close', () => stream.destroy());
        stream.on('error', () => socket.destroy());
        this.outboundH2.emit('connection', stream);
      } else {
        socket.unshift(head);
        this.h1Connections.set(socket, new Set());
        socket.once('close', () => this.h1Connections.delete(socket));
        this.outboundH1.emit('connection', socket);
      }
      socket.resume();
    };
    socket.on('data', onData);
  }

  /** (The request's socket: a pipelined response waiting its turn has none of its own yet.) */
  private trackH1(socket: net.Socket, response: ServerResponse): void {
    const responses = this.h1Connections.get(socket);
    if (!responses) return;
    if (this.stopping) response.shouldKeepAlive = false;
    responses.add(response);
    response.once('close', () => {
      responses.delete(response);
      if (this.stopping && responses.size === 0) socket.end();
    });
  }

  private async outbound(request: Request, response: Response): Promise<void> {
    const started = process.hrtime.bigint();
    const config = this.options.config();
    const grpc = isGrpc(request.headers);
    let authority = String(request.headers[':authority'] ?? request.headers.host ?? '');
    let path = request.url ?? '/';
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
        method: request.method,
        authority,
        path,
        status,
        grpcStatus: grpc ? grpcStatus : undefined,
        durationMs: Math.round(seconds * 100_000) / 100,
        destinationCluster: cluster,
        destinationService: service,
        traceparent: request.headers.traceparent,
      });
    };
    if (!config) {
      this.fail(request, response, 503, 'no config from the controller yet');
      return record(503, grpc ? String(GRPC.UNAVAILABLE) : '', 'unknown', 'unknown');
    }
    const destination = resolveDestination(config, authority, this.options.namespace);
    if (!destination) {
      this.fail(request, response, 404, `no service ${authority} in the clusterset`);
      // The label is not the raw authority: an app could fill the metrics with made-up names.
      return record(404, grpc ? String(GRPC.UNIMPLEMENTED) : '', 'unknown', 'unknown');
    }
    const routed = routeRequest(config, destination, {
      method: request.method ?? 'GET',
      path,
      headers: request.headers,
      grpc,
    });
    if ('status' in routed) {
      this.fail(request, response, routed.status, routed.reason);
      return record(
        routed.status,
        grpc ? String(grpcStatusForHttp(routed.status)) : '',
        'unknown',
        destination.service.hostname,
      );
    }
    // The destination's own name (cluster-local for a Service that is not exported), or the
    // clusterset name of the backend a route chose.
    const serviceName =
      routed.name === destination.service.name && routed.namespace === destination.service.namespace
        ? destination.service.hostname
        : `${routed.name}.${routed.namespace}.svc.clusterset.local`;
    const targets = this.order(config, routed, targetsFor(config, routed, destination.localOnly));
    if (targets.length === 0) {
      this.fail(request, response, 503, `no ready endpoint of ${serviceName}`);
      return record(503, grpc ? String(GRPC.UNAVAILABLE) : '', 'unknown', serviceName);
    }
    // Streamed as it comes; its start is kept for a retry on another target.
    const body = hasNoBody(request)
      ? undefined
      : new ReplayableBody(request, this.options.retryBufferBytes ?? 65_536);
    const headers = {
      ...endToEnd(request.headers),
      ':method': request.method ?? 'GET',
      ':path': path,
      ':authority': authority,
      ':scheme': 'https',
    };
    const failures: string[] = [];
    const plan = targets.slice(0, MAX_ATTEMPTS);
    let reconnected = false;
    try {
      for (let index = 0; index < plan.length; index++) {
        const target = plan[index]!;
        try {
          const outcome = await this.attempt(target, headers, body, response);
          return record(outcome.status, outcome.grpcStatus, target.cluster, serviceName);
        } catch (error) {
          if (closed(response)) return record(499, '', target.cluster, serviceName);
          if (!(error instanceof RetryableFailure)) {
            this.fail(request, response, 502, `upstream reset: ${(error as Error).message}`);
            return record(502, grpc ? String(GRPC.UNAVAILABLE) : '', target.cluster, serviceName);
          }
          failures.push(`${target.cluster} ${target.host}:${target.port}: ${error.message}`);
          if (error.eject) this.ejectedUntil.set(target.key, Date.now() + EJECTION_MS);
          if (response.headersSent || (body && !body.replayable)) break;
          // A lost connection (GOAWAY, reset) gets one new connection to the same target.
          if (error.reconnect && !reconnected) {
            reconnected = true;
            plan.splice(index + 1, 0, target);
          }
        }
      }
      this.options.log?.('warn', 'upstream failed', { service: serviceName, failures });
      this.fail(request, response, 503, `upstream connect error: ${failures.join('; ')}`);
      record(503, grpc ? String(GRPC.UNAVAILABLE) : '', targets[0]!.cluster, serviceName);
    } finally {
      // Whatever of the body is still coming has nowhere to go (the answer is complete, or
      // there is none): it is read and dropped, so the app's connection stays usable.
      body?.discard();
    }
  }

  /**
   * The order targets are tried in: healthy local endpoints (the balancer's pick first),
   * then other clusters, then local endpoints that failed recently.
   */
  private order(
    config: ProxyConfig,
    routed: { namespace: string; name: string; port: number },
    targets: Targets,
  ): readonly Target[] {
    const now = Date.now();
    for (const [key, until] of this.ejectedUntil) if (until <= now) this.ejectedUntil.delete(key);
    // Nothing failed lately and no choice among local endpoints: the order is the config's.
    if (this.ejectedUntil.size === 0 && targets.local.length <= 1) return targets.all;
    const ejected = (target: Target) => (this.ejectedUntil.get(target.key) ?? 0) > now;
    const healthy = targets.local.filter((t) => !ejected(t));
    const type = loadBalancerOf(config, routed.namespace, routed.name);
    let first = 0;
    if (healthy.length > 1) {
      if (type === 'RoundRobin') {
        const key = `${routed.namespace}/${routed.name}:${routed.port}`;
        first = (this.roundRobin.get(key) ?? 0) % healthy.length;
        this.roundRobin.set(key, first + 1);
      } else if (type === 'Random') {
        first = Math.floor(Math.random() * healthy.length);
      } else {
        // Least request, power of two choices.
        const a = Math.floor(Math.random() * healthy.length);
        const b = (a + 1 + Math.floor(Math.random() * (healthy.length - 1))) % healthy.length;
        first = this.pool.active(healthy[a]!.key) <= this.pool.active(healthy[b]!.key) ? a : b;
      }
    }
    const local = [...healthy.slice(first), ...healthy.slice(0, first)];
    const remote = targets.remote.filter((t) => !ejected(t));
    return [...local, ...remote, ...targets.remote.filter(ejected), ...targets.local.filter(ejected)];
  }

  /** One try on one target. Throws RetryableFailure when nothing was sent back to the app yet. */
  private attempt(
    target: Target,
    headers: http2.OutgoingHttpHeaders,
    body: ReplayableBody | undefined,
    response: Response,
  ): Promise<{ status: number; grpcStatus: string }> {
    return new Promise((resolve, reject) => {
      const pooled = this.pool.session(target);
      pooled.active++;
      let committed = false;
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        pooled.active--;
      };
      let stream: http2.ClientHttp2Stream;
      try {
        // A request without a body ends with its HEADERS frame.
        stream = pooled.session.request(headers, { endStream: body === undefined });
      } catch (error) {
        done();
        return reject(new RetryableFailure((error as Error).message, true));
      }
      cancelWhenCallerLeaves(response, stream);
      stream.on('error', (error: Error) => {
        done();
        if (committed) return void response.destroy(error);
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
            ),
          );
        }
        committed = true;
        body?.commit();
        void relay(stream, upstream, flags, response).then((outcome) => {
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
      body?.sendTo(stream);
    });
  }

  private async inbound(
    port: InboundPort,
    listening: number,
    request: Request,
    response: Response,
  ): Promise<void> {
    const started = process.hrtime.bigint();
    const config = this.options.config();
    const grpc = isGrpc(request.headers);
    const socket = (
      'stream' in request && request.stream ? request.stream.session?.socket : request.socket
    ) as TLSSocket;
    let caller = this.identities.get(socket);
    if (!caller) {
      try {
        caller = peerIdentity(socket, { roots: this.roots(), trustDomain: this.options.trustDomain });
      } catch (error) {
        return this.fail(request, response, 403, `not a mesh identity: ${(error as Error).message}`);
      }
      this.identities.set(socket, caller);
    }
    const served = config ? this.served(config, listening) : [];
    const services = served.map((service) => service.name);
    const destinationService = served[0]?.hostname ?? 'unknown';
    const record = (status: number, grpcStatus: string): void => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const workload =
        caller!.spiffeId.kind === 'workload' ? caller!.spiffeId.serviceAccount : caller!.spiffeId.uri;
      this.metrics.record({
        reporter: 'destination',
        sourceCluster: caller!.cluster,
        sourceWorkload: workload,
        destinationCluster: this.options.cluster,
        destinationService,
        responseCode: status,
        grpcStatus,
        seconds,
      });
      this.options.accessLog?.({
        reporter: 'destination',
        method: request.method,
        path: request.url,
        status,
        grpcStatus: grpc ? grpcStatus : undefined,
        durationMs: Math.round(seconds * 100_000) / 100,
        sourcePrincipal: caller!.spiffeId.uri,
        sourceCluster: caller!.cluster,
        destinationService,
        traceparent: request.headers.traceparent,
      });
    };
    if (!config) {
      // Without a config the policies are unknown: nothing is let in (fail closed).
      this.fail(request, response, 503, 'no config from the controller yet');
      return record(503, grpc ? String(GRPC.UNAVAILABLE) : '');
    }
    // Authorization sees exactly what the app will get: an upper-case method and a
    // normalized origin-form target.
    const method = request.method ?? 'GET';
    const target = normalizeTarget(request.url ?? '');
    if (!/^[A-Z]+$/.test(method) || target === undefined) {
      this.fail(request, response, 400, 'the method must be upper case and the target a path');
      return record(400, grpc ? String(GRPC.INTERNAL) : '');
    }
    const spiffe = caller.spiffeId;
    const namespaceHasPolicies = config.policies.some(
      (p) => p.kind === 'AuthorizationPolicy' && p.namespace === this.options.namespace,
    );
    const decision =
      services.length === 0 && namespaceHasPolicies
        ? // Which service this is cannot be told: the namespace's policies cannot be applied (fail closed).
          {
            allowed: false as const,
            policy: this.options.namespace,
            reason: 'this workload serves no known service',
          }
        : authorize(policiesFor(config, this.options.namespace, services), {
            principal: spiffe.uri,
            namespace: spiffe.kind === 'workload' ? spiffe.namespace : undefined,
            cluster: caller.cluster,
            method,
            path: target,
            headers: request.headers,
          });
    if (!decision.allowed) {
      this.fail(request, response, 403, `RBAC: access denied (${decision.policy}: ${decision.reason})`);
      return record(403, grpc ? String(GRPC.PERMISSION_DENIED) : '');
    }
    // The caller is ours to state: any header an app could read as the client certificate
    // (underscore spellings included, as CGI-style servers merge them) is dropped first.
    const spoofable = Object.keys(request.headers).filter(
      (name) => name.replace(/_/g, '-') === 'x-forwarded-client-cert' || name === UPSTREAM_FAILURE,
    );
    const headers = {
      ...endToEnd(request.headers, spoofable),
      'x-forwarded-client-cert': `By=${this.options.credentials().spiffeId};URI=${spiffe.uri}`,
    };
    const outcome =
      port.appProtocol === 'h2c'
        ? await this.toAppH2(port, request, response, headers, target)
        : await this.toAppH1(port, request, response, headers, target);
    record(outcome.status, outcome.grpcStatus);
  }

  /**
   * The services an inbound port serves: those whose local endpoints include this workload's
   * address and that port (their AuthorizationPolicies apply to its requests, no others).
   */
  private served(config: ProxyConfig, listening: number): readonly ProxyConfig['services'][number][] {
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

  private toAppH1(
    port: InboundPort,
    request: Request,
    response: Response,
    headers: http.OutgoingHttpHeaders,
    target: string,
  ): Promise<{ status: number; grpcStatus: string }> {
    return new Promise((resolve) => {
      const upstream = http.request({
        host: this.options.appHost,
        port: port.appPort,
        method: request.method,
        path: target,
        headers: { ...headers, host: String(request.headers[':authority'] ?? request.headers.host ?? '') },
        agent: this.appAgent,
      });
      let answered = false;
      upstream.on('response', (reply) => {
        answered = true;
        const status = reply.statusCode ?? 502;
        if (closed(response)) {
          reply.destroy();
          return resolve({ status: 499, grpcStatus: '' });
        }
        if (status < 200 || status > 599) {
          // HTTP/2 cannot carry it (1xx, or out of range): the app's answer is unusable.
          reply.destroy();
          (response as ServerResponse).writeHead(502, { 'content-type': 'text/plain' });
          response.end(`the app answered status ${status}\n`);
          return resolve({ status: 502, grpcStatus: '' });
        }
        (response as ServerResponse).writeHead(status, endToEnd(reply.headers, [UPSTREAM_FAILURE]));
        reply.pipe(response as NodeJS.WritableStream);
        // 'close' too: an answer cut short has no 'end'.
        reply.once('end', () => resolve({ status, grpcStatus: '' }));
        reply.once('close', () => resolve({ status, grpcStatus: '' }));
      });
      upstream.on('error', (error: Error & { code?: string }) => {
        if (answered) return response.destroy(error);
        this.appUnreachable(request, response, error);
        resolve({ status: 503, grpcStatus: '' });
      });
      // Only an unfinished exchange is cut: a finished one keeps its kept-alive connection.
      response.once('close', () => {
        if (!response.writableFinished) upstream.destroy();
      });
      if (hasNoBody(request)) upstream.end();
      else request.pipe(upstream);
    });
  }

  private toAppH2(
    port: InboundPort,
    request: Request,
    response: Response,
    headers: http2.OutgoingHttpHeaders,
    target: string,
  ): Promise<{ status: number; grpcStatus: string }> {
    return new Promise((resolve) => {
      let session = this.appSessions.get(port.appPort);
      if (!session || session.closed || session.destroyed) {
        session = http2.connect(`http://${this.options.appHost}:${port.appPort}`);
        const current = session;
        current.on('error', () => {});
        current.on('close', () => {
          if (this.appSessions.get(port.appPort) === current) this.appSessions.delete(port.appPort);
        });
        current.unref();
        this.appSessions.set(port.appPort, session);
      }
      const empty = hasNoBody(request);
      const stream = session.request(
        {
          ...headers,
          ':method': request.method ?? 'GET',
          ':path': target,
          ':authority': String(request.headers[':authority'] ?? request.headers.host ?? ''),
          ':scheme': 'http',
        },
        { endStream: empty },
      );
      let answered = false;
      stream.on('response', (reply, flags) => {
        answered = true;
        void relay(stream, reply, flags, response).then(resolve);
      });
      stream.on('error', (error) => {
        if (answered) return response.destroy(error);
        this.appUnreachable(request, response, error);
        resolve({ status: 503, grpcStatus: '' });
      });
      cancelWhenCallerLeaves(response, stream);
      if (!empty) request.pipe(stream);
    });
  }

  /** The app did not answer: a 503 that tells the calling sidecar it may go elsewhere. */
  private appUnreachable(request: Request, response: Response, error: Error & { code?: string }): void {
    if (closed(response)) return;
    if (response.headersSent) return void response.destroy();
    // Only a connection that was never made proves the app did not get the request: then
    // the caller may send it elsewhere. Any other failure may have reached the app.
    const notDelivered = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ENOTFOUND/.test(
      `${error.code ?? ''} ${error.message}`,
    );
    const status = notDelivered ? 503 : 502;
    (response as ServerResponse).writeHead(status, {
      ...(notDelivered ? { [UPSTREAM_FAILURE]: 'connect' } : {}),
      'content-type': 'text/plain',
    });
    response.end(`the app ${notDelivered ? 'is unreachable' : 'failed'}: ${error.message}\n`);
    void request;
  }

  /** A refusal or failure the proxy itself answers: HTTP status, or a gRPC status for gRPC callers. */
  private fail(request: Request, response: Response, status: number, message: string): void {
    if (closed(response)) return;
    if (response.headersSent) return void response.destroy();
    if (isGrpc(request.headers)) {
      // A gRPC error is a trailers-only response: one HEADERS frame that ends the stream.
      endWithHeaders(response, 200, {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusForHttp(status)),
        'grpc-message': encodeURIComponent(message),
      });
      return;
    }
    (response as ServerResponse).writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    response.end(`${message}\n`);
    // Drain what the app is still sending.
    request.resume();
  }
}

/** Whether nothing can be written to a response any more (the caller went away). */
function closed(response: Response): boolean {
  return (
    response.destroyed ||
    response.writableEnded ||
    ('stream' in response && response.stream !== undefined && response.stream.destroyed)
  );
}

/**
 * The caller went away before the answer was complete: the upstream stream is cancelled.
 * (After a complete answer nothing is sent: a reset for a finished stream is an invalid frame
 * to the peer, and enough of them make it drop the connection.)
 */
function cancelWhenCallerLeaves(response: Response, stream: http2.ClientHttp2Stream): void {
  response.once('close', () => {
    if (!response.writableFinished && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  });
}

/** Answers with headers only, ending the stream on them (HTTP/2: one HEADERS frame). */
function endWithHeaders(response: Response, status: number, headers: http2.OutgoingHttpHeaders): void {
  if (closed(response)) return;
  if ('stream' in response && response.stream) {
    response.stream.respond({ ...headers, ':status': status }, { endStream: true });
    return;
  }
  (response as ServerResponse).writeHead(status, headers);
  response.end();
}

/**
 * Passes an HTTP/2 response on: a trailers-only response (how gRPC answers errors) stays
 * trailers-only, and trailers follow the body. Resolves with the status and gRPC status.
 */
function relay(
  stream: http2.ClientHttp2Stream,
  upstream: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
  flags: number,
  response: Response,
): Promise<{ status: number; grpcStatus: string }> {
  const status = Number(upstream[':status']);
  let grpcStatus = String(upstream['grpc-status'] ?? '');
  if (closed(response)) {
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    return Promise.resolve({ status: 499, grpcStatus });
  }
  if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) {
    endWithHeaders(response, status, endToEnd(upstream, [UPSTREAM_FAILURE]));
    return Promise.resolve({ status, grpcStatus });
  }
  stream.on('trailers', (trailers) => {
    grpcStatus = String(trailers['grpc-status'] ?? grpcStatus);
    (response as ServerResponse).addTrailers(endToEnd(trailers) as Record<string, string>);
  });
  // (The retry marker is the inbound sidecar's to set, never an app's.)
  (response as ServerResponse).writeHead(status, endToEnd(upstream, [UPSTREAM_FAILURE]));
  stream.pipe(response as NodeJS.WritableStream);
  return new Promise((resolve) => {
    stream.once('end', () => resolve({ status, grpcStatus }));
    stream.once('close', () => resolve({ status, grpcStatus }));
  });
}
