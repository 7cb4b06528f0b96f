import http from 'node:http';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import tls from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ProxyConfig } from '@causeway/discovery';
import { ClientHelloReader, MAX_CLIENT_HELLO } from './client-hello.ts';
import { parseServiceSni, probeSni } from './names.ts';

/** Why a connection was refused (the `reason` label of the refusal counter). */
export const REFUSAL_REASONS = [
  'limit',
  'timeout',
  'malformed',
  'oversized',
  'no_sni',
  'not_exported',
  'no_endpoint',
  'probe_unauthenticated',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface EastWestGatewayOptions {
  readonly cluster: string;
  /** The gateway's config from its controller: this cluster's exports with local endpoints. */
  readonly config: () => ProxyConfig | undefined;
  /** Most connections at once (default 10,000) and from one source address (default 1,000). */
  readonly maxConnections?: number;
  readonly maxConnectionsPerSource?: number;
  /** How long a client has to send its whole ClientHello (default 5 s). */
  readonly helloTimeoutMs?: number;
  /** How long a connection to a local endpoint may take (default 2 s). */
  readonly connectTimeoutMs?: number;
  /** A passed-through connection with no bytes either way for this long is closed (default 1 h). */
  readonly idleTimeoutMs?: number;
  /**
   * The probe target's TLS (the gateway's own mesh certificate, client certificates
   * required and checked against the bundle). Without it, probes are refused.
   */
  readonly probeContext?: () => tls.SecureContext | undefined;
  readonly registry?: Registry;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** An endpoint that refused a connection is skipped this long. */
const FAILED_ENDPOINT_MS = 5_000;

/**
 * The east-west gateway: the entry of a cluster for the others. It reads the SNI of each
 * mTLS connection without terminating TLS, maps it to an exported service and a ready local
 * endpoint, and passes the bytes through, so the two sidecars authenticate each other end
 * to end. It refuses SNI that names nothing exported here, malformed or oversized
 * ClientHellos, slow clients and clients over the connection limits. The probe target
 * (`probe.<cluster>.causeway.internal`) is the one name it terminates itself: remote
 * sidecars learn from it that this cluster's data plane is up.
 */
export class EastWestGateway {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly perSource = new Map<string, number>();
  private readonly failedUntil = new Map<string, number>();
  private readonly next = new Map<string, number>();
  /**
   * Connections passed through (or being connected) by service port (`namespace/name:port`),
   * closed when it is no longer exported.
   */
  private readonly tunnels = new Map<string, Set<net.Socket>>();
  private readonly refused: Counter;
  private readonly routed: Counter;
  private readonly probeServer: http.Server;

  constructor(private readonly options: EastWestGatewayOptions) {
    const registers = options.registry ? [options.registry] : [];
    this.refused = new Counter({
      name: 'causeway_eastwest_refused_total',
      help: 'Connections the east-west gateway refused, by reason.',
      labelNames: ['reason'],
      registers,
    });
    // Every reason from 0, so that the first refusal is an increase Prometheus can see (a
    // series that appears at 1 has no rate).
    for (const reason of REFUSAL_REASONS) this.refused.inc({ reason }, 0);
    this.routed = new Counter({
      name: 'causeway_eastwest_connections_total',
      help: 'Connections the east-west gateway passed through, by destination service.',
      labelNames: ['destination_service'],
      registers,
    });
    const sockets = this.sockets;
    new Gauge({
      name: 'causeway_eastwest_active_connections',
      help: 'Connections open through the east-west gateway.',
      registers,
      collect() {
        this.set(sockets.size);
      },
    });
    this.server = net.createServer({ pauseOnConnect: false }, (socket) => this.accept(socket));
    this.probeServer = http.createServer((request, response) => this.probe(request, response));
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as net.AddressInfo;
  }

  /** Stops accepting; open connections are ended after `graceMs`. */
  async close(graceMs = 5_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const deadline = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy();
    }, graceMs);
    await closed;
    clearTimeout(deadline);
    this.probeServer.close();
  }

  /** A new config: connections to services it no longer exports are closed. */
  configChanged(config: ProxyConfig): void {
    const exported = new Set(
      config.services.flatMap((service) =>
        service.ports.map((port) => `${service.namespace}/${service.name}:${port.port}`),
      ),
    );
    for (const [service, sockets] of this.tunnels) {
      if (exported.has(service)) continue;
      this.options.log?.('info', 'closing connections to a service no longer exported', {
        service,
        connections: sockets.size,
      });
      for (const socket of sockets) socket.destroy();
      this.tunnels.delete(service);
    }
  }

  /** Connections open now. */
  connections(): number {
    return this.sockets.size;
  }

  private refuse(socket: net.Socket, reason: RefusalReason, fields: Record<string, unknown> = {}): void {
    this.refused.inc({ reason });
    this.options.log?.('warn', 'connection refused', { reason, source: socket.remoteAddress, ...fields });
    socket.destroy();
  }

  private accept(socket: net.Socket): void {
    const source = socket.remoteAddress ?? '';
    const fromSource = this.perSource.get(source) ?? 0;
    if (
      this.sockets.size >= (this.options.maxConnections ?? 10_000) ||
      fromSource >= (this.options.maxConnectionsPerSource ?? 1_000)
    )
      return this.refuse(socket, 'limit');
    this.sockets.add(socket);
    this.perSource.set(source, fromSource + 1);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.perSource.get(source) ?? 1) - 1;
      if (left > 0) this.perSource.set(source, left);
      else this.perSource.delete(source);
    });
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    // One deadline for the whole ClientHello (an idle timeout would restart on every byte).
    const deadline = setTimeout(() => this.refuse(socket, 'timeout'), this.options.helloTimeoutMs ?? 5_000);
    socket.once('close', () => clearTimeout(deadline));
    // Tiny records cost 5 bytes each: a hello that needs more than twice the largest is not honest.
    const reader = new ClientHelloReader(2 * MAX_CLIENT_HELLO);
    const onData = (chunk: Buffer): void => {
      const hello = reader.push(chunk);
      if (hello.kind === 'incomplete') return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(deadline);
      const buffered = reader.bytes();
      if (hello.kind !== 'hello') return this.refuse(socket, hello.kind);
      if (!hello.serverName) return this.refuse(socket, 'no_sni');
      if (hello.serverName === probeSni(this.options.cluster)) return this.startProbe(socket, buffered);
      this.route(socket, hello.serverName, buffered);
    };
    socket.on('data', onData);
  }

  /** Maps a server name to a ready local endpoint and pipes the connection there. */
  private route(socket: net.Socket, serverName: string, hello: Buffer): void {
    const target = parseServiceSni(serverName);
    const service =
      target &&
      this.options.config()?.services.find((s) => s.namespace === target.namespace && s.name === target.name);
    const servicePort = target && service?.ports.find((p) => p.port === target.port && p.protocol === 'TCP');
    if (!target || !service || !servicePort) return this.refuse(socket, 'not_exported', { serverName });
    // Registered before the endpoint is dialled: an unexport while connecting closes it too.
    const tunnel = `${target.namespace}/${target.name}:${target.port}`;
    let open = this.tunnels.get(tunnel);
    if (!open) this.tunnels.set(tunnel, (open = new Set()));
    const tunnels = open;
    tunnels.add(socket);
    socket.once('close', () => {
      tunnels.delete(socket);
      if (tunnels.size === 0 && this.tunnels.get(tunnel) === tunnels) this.tunnels.delete(tunnel);
    });
    const candidates: Array<{ address: string; port: number }> = [];
    for (const backend of service.backends) {
      if (backend.kind !== 'local') continue;
      for (const endpoint of backend.endpoints) {
        if (!endpoint.ready) continue;
        const port = endpoint.ports.find((p) => p.name === (servicePort.name ?? ''));
        if (port) candidates.push({ address: endpoint.address, port: port.port });
      }
    }
    const key = `${target.namespace}/${target.name}:${target.port}`;
    const start = this.next.get(key) ?? 0;
    this.next.set(key, start + 1);
    const now = Date.now();
    // Round robin, endpoints that just failed last.
    const ordered = candidates
      .map((_, index) => candidates[(start + index) % candidates.length]!)
      .sort(
        (a, b) =>
          Number((this.failedUntil.get(`${a.address}:${a.port}`) ?? 0) > now) -
          Number((this.failedUntil.get(`${b.address}:${b.port}`) ?? 0) > now),
      );
    const attempt = (index: number): void => {
      const endpoint = ordered[index];
      if (!endpoint || socket.destroyed)
        return this.refuse(socket, 'no_endpoint', { serverName, tried: index });
      const upstream = net.connect({ host: endpoint.address, port: endpoint.port });
      upstream.setNoDelay(true);
      upstream.setTimeout(this.options.connectTimeoutMs ?? 2_000, () =>
        upstream.destroy(new Error('connect timeout')),
      );
      const failed = (): void => {
        // Nothing was sent back to the client yet: the next endpoint is tried in its place.
        this.failedUntil.set(`${endpoint.address}:${endpoint.port}`, Date.now() + FAILED_ENDPOINT_MS);
        attempt(index + 1);
      };
      upstream.once('error', failed);
      upstream.once('connect', () => {
        upstream.off('error', failed);
        upstream.setTimeout(0);
        // The client went (or was closed: its service was unexported) while this connected.
        if (socket.destroyed) return void upstream.destroy();
        this.routed.inc({ destination_service: `${target.name}.${target.namespace}` });
        upstream.on('error', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
        upstream.on('close', () => socket.destroy());
        const idle = this.options.idleTimeoutMs ?? 3_600_000;
        for (const end of [socket, upstream]) end.setTimeout(idle, () => socket.destroy());
        upstream.write(hello);
        socket.pipe(upstream);
        upstream.pipe(socket);
        socket.resume();
      });
    };
    attempt(0);
  }

  /** The probe target: TLS ended here with the gateway's own certificate; mTLS required. */
  private startProbe(socket: net.Socket, hello: Buffer): void {
    const secureContext = this.options.probeContext?.();
    if (!secureContext) return this.refuse(socket, 'probe_unauthenticated');
    // TLS over a plain stream that replays the ClientHello already read (wrapping the
    // socket itself would hand TLS the native handle and lose those bytes).
    const replay = new PassThrough();
    replay.write(hello);
    socket.pipe(replay);
    const secure = new tls.TLSSocket(Duplex.from({ readable: replay, writable: socket }), {
      isServer: true,
      secureContext,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['http/1.1'],
    });
    secure.on('error', () => {
      this.refused.inc({ reason: 'probe_unauthenticated' });
      socket.destroy();
    });
    secure.setTimeout(this.options.helloTimeoutMs ?? 5_000, () => secure.destroy());
    secure.once('close', () => socket.destroy());
    this.probeServer.emit('connection', secure);
    socket.resume();
  }

  private probe(request: http.IncomingMessage, response: http.ServerResponse): void {
    if (request.method !== 'GET' || request.url !== '/probe') {
      response.writeHead(404, { 'content-type': 'text/plain', connection: 'close' });
      response.end('the probe target answers GET /probe\n');
      return;
    }
    const config = this.options.config();
    const body = JSON.stringify({
      cluster: this.options.cluster,
      configured: config !== undefined,
      services: (config?.services ?? []).map((service) => ({
        namespace: service.namespace,
        name: service.name,
        readyEndpoints: service.backends.reduce(
          (count, backend) =>
            count + (backend.kind === 'local' ? backend.endpoints.filter((e) => e.ready).length : 0),
          0,
        ),
      })),
    });
    response.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    response.end(body);
  }
}
