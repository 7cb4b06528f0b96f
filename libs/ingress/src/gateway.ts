import type http from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { PassThrough } from 'node:stream';
import fastify, { type FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import {
  backendDestination,
  endToEnd,
  GRPC,
  grpcStatusForHttp,
  H1Exchange,
  H2Exchange,
  headerFieldCount,
  type AppExchange,
  isGrpc,
  OutboundProxy,
  ConnectionMetrics,
  RequestMetrics,
  type OutboundOptions,
  type RoutedBackend,
  type UpstreamAnswer,
} from '@causeway/dataplane';
import type { ProxyConfig } from '@causeway/discovery';
import { normalizePath, writeRequestHead, writeResponseHead } from '@causeway/http';
import {
  applyHeaderEdit,
  changePath,
  compileFilters,
  redirectLocation,
  type HeaderEdit,
  type Mirror,
  type RuleFilters,
} from './filters.ts';
import { limitsFor, type RateLimiter } from './rate-limit.ts';
import { RouteTable, type Backend, type RouteEntry } from './route-table.ts';

/** Header fields a request may have (more: 431). */
export const MAX_HEADER_FIELDS = 100;

export interface IngressOptions extends OutboundOptions {
  /** The Gateways served (`<namespace>/<name>`); none: every Gateway of class `causeway`. */
  readonly gateways?: ReadonlySet<string>;
  /** Where a Gateway listener port is served on this machine (default all interfaces, the same port). */
  readonly bind?: (port: number) => { readonly host: string; readonly port: number };
  /**
   * Peers whose `X-Forwarded-*` headers are believed (addresses or CIDR ranges); from any
   * other peer they are replaced.
   */
  readonly trustedProxies?: readonly string[];
  /** A request head must be complete this long after the connection's first byte (408 otherwise). */
  readonly headerTimeoutMs?: number;
  /** A whole request, body included, must arrive within this long (408 otherwise). */
  readonly requestTimeoutMs?: number;
  /** A kept-alive connection with no request in flight is closed after this long. */
  readonly idleTimeoutMs?: number;
  /** Bytes of request head accepted (more: 431). */
  readonly maxHeaderBytes?: number;
  /** Decides RateLimitPolicies (global through Redis, or local); none: they are not applied. */
  readonly rateLimiter?: RateLimiter;
}

/** A listener port being served, and the port it got on this machine. */
interface Served {
  readonly app: FastifyInstance;
  /** The port's listener: it reads each connection's first bytes and hands it to HTTP/1.1 or HTTP/2. */
  readonly server: net.Server;
  readonly h2Sessions: Set<http2.ServerHttp2Session>;
  /** HTTP/1.1 requests in flight. */
  readonly inFlight: { count: number };
  /** Connections upgraded (WebSocket): cut when the listener closes, after the grace period. */
  readonly upgraded: Set<net.Socket>;
  /** An HTTPS port (TLS terminated here, certificates by SNI). */
  readonly tls: boolean;
  readonly gatewayPort: number;
  address: string;
}

const DEFAULTS = {
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 65_000,
  maxHeaderBytes: 16_384,
};

/**
 * The ingress gateway: one HTTP server (fastify) per Gateway listener port, matching
 * requests with the route table compiled once per config, applying the rule's filters, and
 * sending the request through the mesh (the outbound proxy the sidecar uses: mTLS under
 * the gateway's own identity, retries, failover between endpoints and clusters).
 */
export class IngressGateway {
  private readonly outbound: OutboundProxy;
  private readonly metrics: RequestMetrics;
  private table: RouteTable | undefined;
  private tableOf: ProxyConfig | undefined;
  private readonly served = new Map<number, Served>();
  private readonly failed = new Map<number, string>();
  private readonly trusted = new net.BlockList();
  private readonly backendFilters = new WeakMap<Backend, RuleFilters>();
  /** Requests copied to RequestMirror backends, by the mirror's answer. */
  private readonly mirrored: Counter<'service' | 'response_code'>;
  /** TLS contexts per certificate of the current configs. */
  private readonly contexts = new WeakMap<object, tls.SecureContext | null>();
  private reconciling: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly settings: typeof DEFAULTS;

  constructor(private readonly options: IngressOptions) {
    this.metrics = new RequestMetrics(options.registry, true);
    this.mirrored = new Counter({
      name: 'causeway_gateway_mirrored_requests_total',
      help: 'Requests the ingress gateway copied to RequestMirror backends, by the status of the copy.',
      labelNames: ['service', 'response_code'],
      registers: options.registry ? [options.registry] : [],
    });
    this.outbound = new OutboundProxy(
      options,
      this.metrics,
      new ConnectionMetrics(options.registry),
      'per-request',
    );
    this.settings = {
      headerTimeoutMs: options.headerTimeoutMs ?? DEFAULTS.headerTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
    };
    for (const entry of options.trustedProxies ?? []) {
      const [address, bits] = entry.split('/') as [string, string?];
      const type = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.trusted.addAddress(address, type);
      else this.trusted.addSubnet(address, Number(bits), type);
    }
  }

  /** The route table of the current config (compiled on first use after a change). */
  private routes(config: ProxyConfig): RouteTable {
    if (this.tableOf !== config || !this.table) {
      this.table = RouteTable.compile(config, this.options.gateways, (message) =>
        this.options.log?.('warn', message),
      );
      this.tableOf = config;
    }
    return this.table;
  }

  /**
   * A new config: the route table is compiled again, listener ports it adds are opened and
   * ports it no longer has are closed (after their requests finish). Resolves when done.
   */
  configChanged(config: ProxyConfig): Promise<void> {
    this.outbound.configChanged(config);
    const ports = this.routes(config).listenerPorts();
    this.reconciling = this.reconciling
      .then(() => this.reconcile(ports))
      .catch((error: unknown) =>
        this.options.log?.('warn', 'listeners could not be changed', { err: String(error) }),
      );
    return this.reconciling;
  }

  /** The listener ports served now: Gateway port -> `host:port` on this machine. */
  listeners(): Record<number, string> {
    return Object.fromEntries([...this.served.values()].map((s) => [s.gatewayPort, s.address]));
  }

  private async reconcile(
    ports: ReadonlyArray<{ readonly port: number; readonly tls: boolean }>,
  ): Promise<void> {
    if (this.stopping) return;
    for (const [port, served] of this.served)
      if (!ports.some((p) => p.port === port && p.tls === served.tls)) {
        this.served.delete(port);
        // Not awaited: a long download on a closing port must not hold up the others.
        void closeServed(served).then(() =>
          this.options.log?.('info', 'listener closed', { gatewayPort: port }),
        );
      }
    this.failed.clear();
    for (const { port, tls: secure } of ports) {
      if (this.served.has(port)) continue;
      try {
        const served = await this.open(port, secure);
        this.served.set(port, served);
        this.options.log?.('info', 'listener serving', { gatewayPort: port, address: served.address });
      } catch (error) {
        this.failed.set(port, String(error));
        this.options.log?.('warn', 'listener cannot be opened (tried again with the next config)', {
          gatewayPort: port,
          err: String(error),
        });
      }
    }
  }

  /** Listener ports that could not be opened, with the reason (the gateway is not ready). */
  failures(): ReadonlyMap<number, string> {
    return this.failed;
  }

  private async open(gatewayPort: number, secure: boolean): Promise<Served> {
    const { host, port } = this.options.bind?.(gatewayPort) ?? { host: '0.0.0.0', port: gatewayPort };
    const app = fastify({
      logger: false,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      keepAliveTimeout: this.settings.idleTimeoutMs,
      requestTimeout: this.settings.requestTimeoutMs,
      exposeHeadRoutes: false,
      http: {
        maxHeaderSize: this.settings.maxHeaderBytes,
        // How often Node looks for heads and requests past their time (its default: 30 s).
        connectionsCheckingInterval: Math.max(250, Math.min(5_000, this.settings.headerTimeoutMs / 4)),
      },
    });
    // Every request is taken at its first hook and the reply hijacked: fastify parses no
    // body (the backend reads it as a stream) and refuses no content type.
    app.addHook('onRequest', (request, reply, done) => {
      reply.hijack();
      const raw = request.raw;
      this.serve(
        gatewayPort,
        {
          method: raw.method ?? 'GET',
          url: raw.url ?? '',
          headers: raw.headers,
          rawHeaders: raw.rawHeaders,
          remoteAddress: raw.socket.remoteAddress ?? '',
          ...(secure ? { servername: String((raw.socket as tls.TLSSocket).servername || '') } : {}),
        },
        new H1Exchange(raw, reply.raw),
      );
      done();
    });
    app.all('*', () => undefined);
    await app.ready();
    // The head of a request must arrive in time (slow clients are cut off).
    app.server.headersTimeout = this.settings.headerTimeoutMs;
    // The net server below owns the port; Node's HTTP server tracks its connections (head and
    // request timeouts, closing idle ones) once it has heard it is listening.
    app.server.emit('listening');
    // WebSocket (and other) upgrades: routed like any request, then carried whole.
    const upgraded = new Set<net.Socket>();
    app.server.on('upgrade', (raw: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      upgraded.add(socket);
      socket.once('close', () => upgraded.delete(socket));
      const exchange = new UpgradeExchange(raw, socket);
      this.serve(
        gatewayPort,
        {
          method: raw.method ?? 'GET',
          url: raw.url ?? '',
          headers: raw.headers,
          rawHeaders: raw.rawHeaders,
          remoteAddress: raw.socket.remoteAddress ?? '',
          ...(secure ? { servername: String((raw.socket as tls.TLSSocket).servername || '') } : {}),
          upgrade: { socket, head },
        },
        exchange,
      );
    });
    // Requests in flight on HTTP/1.1, so that a closing listener waits for them.
    const inFlight = { count: 0 };
    app.server.on('request', (_request, response: http.ServerResponse) => {
      inFlight.count++;
      response.once('close', () => inFlight.count--);
    });
    // HTTP/2 with prior knowledge (h2c: gRPC clients) on the same port, core API streams.
    const h2 = http2.createServer({
      maxHeaderListPairs: MAX_HEADER_FIELDS + 8,
      settings: { maxConcurrentStreams: 250, maxHeaderListSize: this.settings.maxHeaderBytes },
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    h2.on('session', (session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      session.setTimeout(this.settings.idleTimeoutMs, () => {
        session.close();
        // A stream held open (a client that stops reading) does not keep it for ever.
        setTimeout(() => session.destroy(), CLOSE_GRACE_MS).unref();
      });
    });
    h2.on(
      'stream',
      (
        stream: http2.ServerHttp2Stream,
        headers: http2.IncomingHttpHeaders,
        _flags: number,
        rawHeaders: string[],
      ) => {
        stream.on('error', () => stream.destroy());
        stream.setTimeout(this.settings.requestTimeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
        if (String(headers.expect).toLowerCase() === '100-continue')
          stream.additionalHeaders({ ':status': 100 });
        this.serve(
          gatewayPort,
          {
            method: String(headers[':method'] ?? 'GET'),
            url: String(headers[':path'] ?? ''),
            headers,
            rawHeaders,
            remoteAddress: stream.session?.socket?.remoteAddress ?? '',
            ...(secure
              ? {
                  servername: String((stream.session?.socket as tls.TLSSocket | undefined)?.servername || ''),
                }
              : {}),
          },
          new H2Exchange(stream, headers, rawHeaders),
        );
      },
    );
    // Half-open allowed: a client that sends its FIN after a request still gets the answer.
    const server = secure
      ? tls.createServer(
          {
            ALPNProtocols: ['h2', 'http/1.1'],
            allowHalfOpen: true,
            minVersion: 'TLSv1.2',
            handshakeTimeout: this.settings.headerTimeoutMs,
            // The certificate of the listener the client names (SNI), from the current config.
            SNICallback: (servername, callback) => {
              const context = this.secureContext(gatewayPort, servername);
              if (context) callback(null, context);
              else callback(new Error(`no HTTPS listener on port ${gatewayPort} serves ${servername}`));
            },
          },
          (socket) => {
            socket.setNoDelay(true);
            socket.on('error', () => socket.destroy());
            (socket.alpnProtocol === 'h2' ? h2 : app.server).emit('connection', socket);
          },
        )
      : net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) =>
          sniff(socket, this.settings.headerTimeoutMs, (http2Preface) =>
            (http2Preface ? h2 : app.server).emit('connection', socket),
          ),
        );
    // A failed or timed-out handshake: the connection goes (Node leaves that to the server).
    server.on('tlsClientError', (_error: Error, socket: tls.TLSSocket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch(async (error: unknown) => {
      await app.close();
      throw error;
    });
    const bound = server.address() as net.AddressInfo;
    return {
      app,
      server,
      h2Sessions: sessions,
      inFlight,
      upgraded,
      tls: secure,
      gatewayPort,
      address: `${bound.address}:${bound.port}`,
    };
  }

  /**
   * The TLS context of the HTTPS listener on `port` that `servername` names (its first
   * certificate that resolved), made once per certificate.
   */
  private secureContext(port: number, servername: string): tls.SecureContext | undefined {
    const config = this.options.config();
    if (!config) return undefined;
    const listener = this.routes(config).listenerFor(port, servername.toLowerCase());
    const chosen = listener?.protocol === 'HTTPS' ? listener.certificates?.[0] : undefined;
    if (!chosen) return undefined;
    let context = this.contexts.get(chosen);
    if (context === undefined) {
      try {
        context = tls.createSecureContext({ cert: chosen.certificate, key: chosen.privateKey });
      } catch (error) {
        // (The controller checks with the same call; this is the last line.)
        this.options.log?.('warn', 'a listener certificate cannot be used', { port, err: String(error) });
        context = null;
      }
      this.contexts.set(chosen, context);
    }
    return context ?? undefined;
  }

  /** Serves one request, answering 500 if serving it throws. */
  private serve(gatewayPort: number, request: RequestView, exchange: AppExchange): void {
    this.handle(gatewayPort, request, exchange).catch((error: unknown) => {
      this.options.log?.('warn', 'request failed', { err: String(error) });
      if (exchange.answered) exchange.abort();
      else exchange.fail(500, 'the gateway failed to serve the request');
    });
  }

  /** One request on a listener port. */
  private async handle(gatewayPort: number, request: RequestView, original: AppExchange): Promise<void> {
    const started = process.hrtime.bigint();
    const method = request.method;
    const grpc = isGrpc(request.headers);
    const rawHost = String(request.headers[':authority'] ?? request.headers.host ?? '');
    let route = '';
    const record = (
      status: number,
      grpcStatus: string,
      cluster: string,
      service: string,
      path?: string,
    ): void => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics.record({
        reporter: 'gateway',
        sourceCluster: this.options.cluster,
        sourceWorkload: this.options.serviceAccount,
        destinationCluster: cluster,
        destinationService: service,
        responseCode: status,
        grpcStatus,
        seconds,
        route,
      });
      this.options.accessLog?.({
        reporter: 'gateway',
        method,
        authority: rawHost,
        path: path ?? request.url,
        status,
        grpcStatus: grpc ? grpcStatus : undefined,
        durationMs: Math.round(seconds * 100_000) / 100,
        route: route || undefined,
        destinationCluster: cluster,
        destinationService: service,
        client: request.remoteAddress,
        traceparent: request.headers.traceparent,
      });
    };
    const refuse = (status: number, message: string, extra: Record<string, string> = {}): void => {
      original.fail(status, message, { headers: extra });
      record(status, grpc ? String(grpcStatusForHttp(status)) : '', 'unknown', 'unknown');
    };
    const fields = headerFieldCount(request.rawHeaders);
    if (fields > MAX_HEADER_FIELDS)
      return refuse(431, `${fields} header fields; at most ${MAX_HEADER_FIELDS} are accepted`);
    const config = this.options.config();
    if (!config) return refuse(503, 'no config from the controller yet');
    const host = hostOf(rawHost);
    if (host === undefined) return refuse(400, 'the request has no valid Host');
    const normalized = normalizePath(request.url ?? '', this.options.pathNormalization);
    if (!normalized.ok) return refuse(400, `${normalized.code}: ${normalized.reason}`);
    const target = normalized.target;
    // Hop-by-hop headers (and those `Connection` names) go first, then X-Forwarded-* are
    // made trustworthy: routes match on what the backend will see, and a client cannot
    // strip what the gateway adds.
    const headers = endToEnd(request.headers) as IncomingHttpHeaders;
    const client = this.forwardedHeaders(
      headers,
      request.remoteAddress,
      rawHost,
      request.servername !== undefined ? 'https' : 'http',
    );
    const decision = this.routes(config).match(gatewayPort, { method, target, host, headers, grpc });
    if (decision.type === 'no-listener') return refuse(404, `no listener on this port serves ${host}`);
    if (decision.type === 'no-route') return refuse(404, `no route matches ${method} ${host}${target}`);
    // Over TLS, the request must be for the listener its connection named (SNI).
    if (
      request.servername !== undefined &&
      this.routes(config).listenerFor(gatewayPort, request.servername.toLowerCase()) !== decision.listener
    )
      return refuse(421, `this connection is for ${request.servername}, not ${host}`);
    const { entry } = decision;
    route = entry.label;
    const queryStart = target.indexOf('?');
    const path = queryStart < 0 ? target : target.slice(0, queryStart);
    const query = queryStart < 0 ? '' : target.slice(queryStart);
    const prefix = entry.path?.type === 'PathPrefix' ? entry.path.value : undefined;
    const { filters } = entry;
    if (entry.broken) return refuse(500, `${entry.label} cannot be served: ${entry.broken}`);
    let limitHeaders: Record<string, string> | undefined;
    const limits = this.options.rateLimiter && limitsFor(config, decision.listener.gateway, entry.route);
    if (limits?.length) {
      const rate = await this.options.rateLimiter!.check(limits, {
        remoteAddress: client,
        method,
        path,
        headers,
      });
      if (rate.verdict === 'limited') {
        original.fail(429, 'rate limited', { headers: rate.headers, grpcStatus: GRPC.RESOURCE_EXHAUSTED });
        return record(429, grpc ? String(GRPC.RESOURCE_EXHAUSTED) : '', 'unknown', 'unknown');
      }
      if (rate.verdict === 'unavailable')
        return refuse(
          503,
          'rate limits cannot be decided now (Redis is unreachable and the policy fails closed)',
        );
      if (Object.keys(rate.headers).length > 0) limitHeaders = rate.headers;
    }
    if (filters.redirect) {
      const location = redirectLocation(
        filters.redirect,
        { scheme: request.servername !== undefined ? 'https' : 'http', host, port: gatewayPort, path, query },
        prefix,
      );
      original.fail(filters.redirect.statusCode, `moved to ${location}`, { headers: { location } });
      return record(filters.redirect.statusCode, '', 'unknown', 'unknown', target);
    }
    const backend = pickBackend(entry);
    if (!backend) return refuse(500, `${entry.label} has no backend to send the request to`);
    const service = `${backend.name}.${backend.namespace}`;
    if (!backend.resolved) return refuse(500, `${entry.label}: backend ${service} did not resolve`);
    const destination = backendDestination(
      config,
      backend.kind,
      backend.namespace,
      backend.name,
      backend.port,
    );
    if (!destination)
      return refuse(500, `${entry.label}: no ${backend.kind} ${service} with that port is known here`);
    const backendFilters = this.filtersOf(backend);
    applyHeaderEdit(headers, filters.requestHeaders);
    applyHeaderEdit(headers, backendFilters.requestHeaders);
    const rewrite = filters.rewrite ?? backendFilters.rewrite;
    const sentPath = rewrite?.path ? `${changePath(path, rewrite.path, prefix)}${query}` : target;
    const authority = rewrite?.hostname ?? rawHost;
    const routed: RoutedBackend = {
      namespace: destination.service.namespace,
      name: destination.service.name,
      port: destination.port,
      route: entry.label,
      ...(entry.timeouts ? { timeouts: entry.timeouts } : {}),
    };
    const responseEdits = [
      filters.responseHeaders,
      backendFilters.responseHeaders,
      limitHeaders && { set: Object.entries(limitHeaders), add: [], remove: [] },
    ].filter((edit): edit is HeaderEdit => edit !== undefined);
    if (request.upgrade) {
      // (The answer is carried as it comes: response filters do not apply to an upgrade.)
      const upgradeTo = String(request.headers.upgrade ?? '');
      if (upgradeTo.toLowerCase() !== 'websocket')
        return refuse(501, `upgrading to ${upgradeTo} is not served; WebSocket is`);
      return this.carryUpgrade(config, destination, request.upgrade, original, {
        method,
        path: sentPath,
        fields: [
          'host',
          authority,
          ...Object.entries(headers).flatMap(([name, value]) =>
            (Array.isArray(value) ? value : [String(value)]).flatMap((v) => [name, v]),
          ),
          'connection',
          'upgrade',
          'upgrade',
          upgradeTo,
        ],
        record: (status, cluster) => record(status, '', cluster, destination.service.hostname, target),
      });
    }
    const exchange = responseEdits.length ? new EditedExchange(original, responseEdits) : original;
    for (const mirror of filters.mirrors)
      if (mirror.fraction >= 1 || Math.random() < mirror.fraction)
        this.mirror(config, mirror, entry.route.namespace, original, {
          method,
          path: sentPath,
          authority,
          headers,
          grpc,
        });
    await this.outbound.forward(exchange, {
      config,
      destination,
      routed,
      method,
      path: sentPath,
      authority,
      headers,
      grpc,
      // An HTTP/1.1 client's request goes on as HTTP/1.1 in a pooled tunnel (the cheaper path
      // at both ends); HTTP/2 clients' requests go on as HTTP/2 streams.
      framed: original instanceof H1Exchange,
      record: (status, grpcStatus, cluster, serviceName) =>
        record(status, grpcStatus, cluster, serviceName, target),
    });
  }

  /**
   * A copy of the request to a RequestMirror backend, its answer dropped: the body is
   * copied as the client sends it (the mirror never slows the real request: a mirror that
   * cannot keep up loses its copy), and nothing of the mirror reaches the client.
   */
  private mirror(
    config: ProxyConfig,
    mirror: Mirror,
    namespace: string,
    original: AppExchange,
    request: {
      readonly method: string;
      readonly path: string;
      readonly authority: string;
      readonly headers: IncomingHttpHeaders;
      readonly grpc: boolean;
    },
  ): void {
    // Only into the route's own namespace: a copy of the traffic is the traffic, and no
    // ReferenceGrant is consulted for mirrors.
    if (mirror.namespace !== undefined && mirror.namespace !== namespace) return;
    const destination = backendDestination(config, mirror.kind, namespace, mirror.name, mirror.port);
    if (!destination) return;
    const source = original.body;
    let body: PassThrough | undefined;
    if (source) {
      const copy = new PassThrough({ highWaterMark: MIRROR_BUFFER_BYTES });
      body = copy;
      source.on('data', (chunk: Buffer) => {
        if (copy.writableLength > MIRROR_BUFFER_BYTES) copy.destroy();
        else if (!copy.destroyed) copy.write(chunk);
      });
      source.once('end', () => copy.end());
      source.once('close', () => copy.end());
    }
    const exchange = new MirrorExchange(
      request.method,
      request.path,
      request.authority,
      request.headers,
      body,
    );
    this.outbound
      .forward(exchange, {
        config,
        destination,
        routed: {
          namespace: destination.service.namespace,
          name: destination.service.name,
          port: destination.port,
        },
        ...request,
        record: (status) =>
          this.mirrored.inc({ service: destination.service.hostname, response_code: String(status) }),
      })
      .catch(() => undefined);
  }

  /**
   * An upgrade request sent over a mesh tunnel to the backend, then the client's connection
   * and the tunnel joined: the backend's answer (101 and what follows, or a refusal) goes
   * back as it comes.
   */
  private async carryUpgrade(
    config: ProxyConfig,
    destination: NonNullable<ReturnType<typeof backendDestination>>,
    upgrade: { readonly socket: net.Socket; readonly head: Buffer },
    exchange: AppExchange,
    request: {
      readonly method: string;
      readonly path: string;
      readonly fields: readonly string[];
      readonly record: (status: number, cluster: string) => void;
    },
  ): Promise<void> {
    let head: Buffer;
    try {
      head = writeRequestHead(request.method, request.path, request.fields);
    } catch (error) {
      exchange.fail(400, `the request cannot be sent on: ${(error as Error).message}`);
      return request.record(400, 'unknown');
    }
    const lease = await this.outbound.upgradeTunnel(config, destination);
    if (typeof lease === 'string') {
      exchange.fail(503, lease);
      return request.record(503, 'unknown');
    }
    if (upgrade.socket.destroyed) return void lease.release(true);
    // The backend's answer head is read first: only a 101 joins the two connections. Any
    // other answer is passed on as a status alone and both sides close, so nothing the
    // client sends afterwards can reach the backend without being routed.
    const answer = await new Promise<{ status: number; bytes: Buffer } | undefined>((resolve) => {
      let received = Buffer.alloc(0);
      const timer = setTimeout(() => resolve(undefined), this.settings.requestTimeoutMs);
      lease.attach({
        data: (chunk) => {
          received = Buffer.concat([received, chunk]);
          const end = received.indexOf('\r\n\r\n');
          if (end < 0 && received.length < 65_536) return;
          clearTimeout(timer);
          lease.pause();
          const status = /^HTTP\/1\.[01] (\d{3}) /.exec(received.toString('latin1', 0, 32))?.[1];
          resolve(status ? { status: Number(status), bytes: received } : undefined);
        },
        end: () => {
          clearTimeout(timer);
          resolve(undefined);
        },
      });
      lease.write(head);
    });
    lease.attach(undefined);
    if (!answer || answer.status !== 101 || upgrade.socket.destroyed) {
      lease.release(true);
      const status = answer?.status ?? 502;
      exchange.fail(
        status === 101 ? 502 : status,
        answer ? `the backend answered ${status}` : 'the backend did not answer the upgrade',
      );
      return request.record(answer ? status : 502, lease.target.cluster);
    }
    upgrade.socket.write(answer.bytes);
    lease.splice(upgrade.socket, upgrade.head);
    lease.resume();
    request.record(101, lease.target.cluster);
  }

  /**
   * `X-Forwarded-For`, `-Proto` and `-Host`: kept and extended from a trusted proxy,
   * replaced from anyone else (a client cannot choose the address a backend sees).
   */
  private forwardedHeaders(headers: IncomingHttpHeaders, peer: string, host: string, scheme: string): string {
    const family = net.isIPv6(peer) ? 'ipv6' : 'ipv4';
    const trusted = peer !== '' && this.trusted.check(peer, family);
    // Underscore spellings, which CGI-style servers merge with the real ones, are dropped.
    for (const name of Object.keys(headers))
      if (name.includes('_') && name.replace(/_/g, '-').startsWith('x-forwarded-')) delete headers[name];
    const before = headers['x-forwarded-for'];
    const chain = trusted && before ? `${Array.isArray(before) ? before.join(', ') : before}, ` : '';
    headers['x-forwarded-for'] = `${chain}${peer}`;
    if (!trusted || !headers['x-forwarded-proto']) headers['x-forwarded-proto'] = scheme;
    if (!trusted || !headers['x-forwarded-host']) headers['x-forwarded-host'] = host;
    delete headers.forwarded;
    // The client: the nearest address in the chain that is not a trusted proxy.
    const hops = String(headers['x-forwarded-for'])
      .split(',')
      .map((hop) => hop.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      // (A hop that is not an address, `unknown` or one with a port, is passed over.)
      if (!net.isIP(hop)) continue;
      if (i === 0 || !this.trusted.check(hop, net.isIPv6(hop) ? 'ipv6' : 'ipv4')) return hop;
    }
    return peer;
  }

  private filtersOf(backend: Backend): RuleFilters {
    let filters = this.backendFilters.get(backend);
    if (!filters) this.backendFilters.set(backend, (filters = compileFilters(backend.filters)));
    return filters;
  }

  /** Stops taking requests, lets those in flight finish, closes the mesh sessions. */
  async close(): Promise<void> {
    this.stopping = true;
    await this.reconciling;
    await Promise.all([...this.served.values()].map(closeServed));
    this.served.clear();
    this.outbound.close();
  }
}

/** Requests in flight on a closing listener get this long to finish; then they are cut. */
const CLOSE_GRACE_MS = 10_000;

async function closeServed(served: Served): Promise<void> {
  // No new connections; HTTP/2 clients are told to finish (GOAWAY) and go.
  served.server.close();
  for (const session of served.h2Sessions) session.close();
  await served.app.close();
  served.app.server.closeIdleConnections();
  // Requests in flight get the grace period to finish.
  const deadline = Date.now() + CLOSE_GRACE_MS;
  while ((served.inFlight.count > 0 || served.h2Sessions.size > 0) && Date.now() < deadline) {
    served.app.server.closeIdleConnections();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  served.app.server.closeAllConnections();
  for (const socket of served.upgraded) socket.destroy();
  for (const session of served.h2Sessions) session.destroy();
}

/** An exchange whose upstream answer's headers are changed first (ResponseHeaderModifier, RateLimit). */
class EditedExchange implements AppExchange {
  constructor(
    private readonly inner: AppExchange,
    private readonly edits: readonly HeaderEdit[],
  ) {}

  get method() {
    return this.inner.method;
  }
  get target() {
    return this.inner.target;
  }
  get authority() {
    return this.inner.authority;
  }
  get headers() {
    return this.inner.headers;
  }
  get rawHeaders() {
    return this.inner.rawHeaders;
  }
  get connection() {
    return this.inner.connection;
  }
  get body() {
    return this.inner.body;
  }
  get closed() {
    return this.inner.closed;
  }
  get answered() {
    return this.inner.answered;
  }
  fail(status: number, message: string, extra?: Parameters<AppExchange['fail']>[2]): void {
    this.inner.fail(status, message, extra);
  }
  relay(
    upstream: UpstreamAnswer,
    headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
    flags: number,
  ) {
    const edited = { ...headers };
    for (const edit of this.edits) applyHeaderEdit(edited, edit);
    return this.inner.relay(upstream, edited, flags);
  }
  cancelWhenGone(upstream: UpstreamAnswer): void {
    this.inner.cancelWhenGone(upstream);
  }
  onClosed(listener: () => void): void {
    this.inner.onClosed(listener);
  }
  abort(): void {
    this.inner.abort();
  }
}

/** Bytes of a request body a mirror may fall behind the real request by before its copy is dropped. */
const MIRROR_BUFFER_BYTES = 1_048_576;

/** The side of a mirrored request that would face a client: there is none, so answers are read and dropped. */
class MirrorExchange implements AppExchange {
  readonly connection = undefined;
  readonly rawHeaders: readonly string[] = [];
  private done = false;
  private readonly listeners: Array<() => void> = [];

  constructor(
    readonly method: string,
    readonly target: string,
    readonly authority: string,
    readonly headers: IncomingHttpHeaders,
    readonly body: PassThrough | undefined,
  ) {}
  get closed() {
    return this.done;
  }
  get answered() {
    return this.done;
  }
  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.body?.destroy();
    for (const listener of this.listeners.splice(0)) listener();
  }
  fail(): void {
    this.finish();
  }
  relay(upstream: UpstreamAnswer, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) {
    const status = Number(headers[':status']);
    upstream.resume();
    return new Promise<{ status: number; grpcStatus: string }>((resolve) => {
      const done = () => {
        this.finish();
        resolve({ status, grpcStatus: String(headers['grpc-status'] ?? '') });
      };
      upstream.once('end', done);
      upstream.once('close', done);
    });
  }
  cancelWhenGone(): void {}
  onClosed(listener: () => void): void {
    if (this.done) listener();
    else this.listeners.push(listener);
  }
  abort(): void {
    this.finish();
  }
}

/** A request as the gateway reads it, from HTTP/1.1 or HTTP/2. */
interface RequestView {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly remoteAddress: string;
  /** Over TLS: the server name the client's connection named (SNI; empty: none). */
  readonly servername?: string;
  /** An HTTP/1.1 upgrade: the client's connection and what it sent after the head. */
  readonly upgrade?: { readonly socket: net.Socket; readonly head: Buffer };
}

/**
 * The client's side of an upgrade request: refusals are written on its connection, which
 * then closes; a successful upgrade never answers through it (the tunnel carries the answer).
 */
class UpgradeExchange implements AppExchange {
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly connection = undefined;
  readonly body = undefined;
  private done = false;

  constructor(
    private readonly request: http.IncomingMessage,
    private readonly socket: net.Socket,
  ) {
    this.method = request.method ?? 'GET';
    this.target = request.url ?? '/';
    this.authority = String(request.headers.host ?? '');
  }
  get headers() {
    return this.request.headers;
  }
  get rawHeaders() {
    return this.request.rawHeaders;
  }
  get closed() {
    return this.done || this.socket.destroyed;
  }
  get answered() {
    return this.done;
  }
  fail(status: number, message: string, extra?: Parameters<AppExchange['fail']>[2]): void {
    if (this.closed) return;
    this.done = true;
    const body = Buffer.from(`${message}\n`);
    const fields = Object.entries(extra?.headers ?? {}).flatMap(([name, value]) => [name, String(value)]);
    this.socket.end(
      Buffer.concat([
        writeResponseHead(status, STATUS_CODES[status] ?? 'Error', [
          'content-type',
          'text/plain; charset=utf-8',
          'content-length',
          String(body.length),
          'connection',
          'close',
          ...fields,
        ]),
        body,
      ]),
    );
  }
  relay(): Promise<never> {
    return Promise.reject(new Error('an upgrade is carried whole, never relayed'));
  }
  cancelWhenGone(): void {}
  onClosed(listener: () => void): void {
    if (this.socket.destroyed) listener();
    else this.socket.once('close', listener);
  }
  abort(): void {
    this.socket.destroy();
  }
}

const H2_PREFACE = 'PRI * HTTP/2.0';

/**
 * Reads a connection's first bytes: the HTTP/2 preface (prior knowledge) or anything else
 * (HTTP/1.1), then hands the socket on with those bytes put back. A connection that says
 * nothing within `timeoutMs` is closed.
 */
function sniff(socket: net.Socket, timeoutMs: number, handOff: (http2Preface: boolean) => void): void {
  socket.on('error', () => socket.destroy());
  // A fixed deadline (not an idle timer a byte at a time could keep resetting).
  const deadline = setTimeout(() => socket.destroy(), timeoutMs);
  socket.once('close', () => clearTimeout(deadline));
  const chunks: Buffer[] = [];
  const onEnd = (): void => void socket.end();
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    const head = Buffer.concat(chunks);
    const seen = head.toString('latin1', 0, Math.min(head.length, H2_PREFACE.length));
    if (seen.length < H2_PREFACE.length && H2_PREFACE.startsWith(seen)) return;
    socket.off('data', onData);
    socket.off('end', onEnd);
    clearTimeout(deadline);
    socket.pause();
    socket.unshift(head);
    handOff(seen === H2_PREFACE);
    if (seen !== H2_PREFACE) socket.resume();
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
}

/** A weighted draw among a rule's backends; none when every weight is 0. */
function pickBackend(entry: RouteEntry): Backend | undefined {
  const backends = entry.backends;
  if (backends.length === 1) return backends[0]!.weight > 0 ? backends[0] : undefined;
  const total = backends.reduce((sum, b) => sum + b.weight, 0);
  if (total <= 0) return undefined;
  let draw = Math.random() * total;
  for (const backend of backends) {
    draw -= backend.weight;
    if (draw < 0) return backend;
  }
  return backends.at(-1);
}

/** The host of a Host header, lower case, without port or trailing dot; undefined if malformed. */
export function hostOf(header: string): string | undefined {
  if (header.length > 261) return undefined;
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::(\d{1,5}))?$/.exec(header);
  if (!match) return undefined;
  return match[1]!.toLowerCase().replace(/\.$/, '');
}
