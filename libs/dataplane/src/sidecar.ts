import http, { type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ProxyConfig } from '@causeway/discovery';
import type { WorkloadCredentials } from '@causeway/identity';
import { H2_MAX_HEADER_LIST_PAIRS, isGrpc } from './http-util.ts';
import { OutboundH1Connection } from './h1-outbound.ts';
import { InboundProxy } from './inbound.ts';
import type { Ejection } from './outliers.ts';
import { OutboundProxy } from './outbound.ts';
import { H1Exchange, H2Exchange } from './exchange.ts';
import { failStream } from './responses.ts';
import type { SidecarOptions } from './sidecar-options.ts';
import { ConnectionMetrics, RequestMetrics } from './telemetry.ts';

export type { InboundPort, SidecarOptions, SidecarTimeouts } from './sidecar-options.ts';
export { DEFAULT_SIDECAR_TIMEOUTS } from './sidecar-options.ts';

const H2_PREFACE = 'PRI * HTTP/2.0';

/**
 * The sidecar: the app's outbound proxy (HTTP/1.1 and HTTP/2 cleartext on one port, see
 * `OutboundProxy`) and its inbound mTLS listeners (see `InboundProxy`). This class owns the
 * listeners and the connections' lifecycle: start, new credentials, new configs, and a
 * graceful stop.
 */
export class Sidecar {
  private readonly outboundProxy: OutboundProxy;
  private readonly inboundProxy: InboundProxy;
  private readonly outboundServer: net.Server;
  private readonly outboundH1: http.Server;
  private readonly outboundH2: http2.Http2Server;
  private readonly inboundServers: http2.Http2SecureServer[] = [];
  private readonly inboundSessions = new Set<http2.ServerHttp2Session>();
  private readonly outboundSessions = new Set<http2.ServerHttp2Session>();
  private inboundPorts: number[] = [];
  /** The app's HTTP/1.1 connections to the outbound port, with their responses in progress. */
  private readonly h1Connections = new Map<net.Socket, Set<ServerResponse>>();
  /** The app's HTTP/1.1 connections framed by the sidecar itself (L4 while they can be). */
  private readonly framed = new Set<OutboundH1Connection>();
  private stopping = false;

  constructor(private readonly options: SidecarOptions) {
    const metrics = new RequestMetrics(options.registry);
    const connections = new ConnectionMetrics(options.registry);
    this.outboundProxy = new OutboundProxy(options, metrics, connections);
    this.inboundProxy = new InboundProxy(options, metrics, connections);
    // Node's HTTP/1 parser refuses request smuggling (Content-Length with Transfer-Encoding),
    // obs-fold and oversized headers (431) before a request exists: nothing is forwarded.
    this.outboundH1 = http.createServer({ keepAliveTimeout: 65_000 }, (request, response) => {
      this.trackH1(request.socket as net.Socket, response);
      const exchange = new H1Exchange(request, response);
      this.outboundProxy.handle(exchange).catch((error: unknown) => exchange.fail(500, String(error)));
    });
    // `CONNECT host:port` from the app: carried whole (L4), or served inside (L7).
    this.outboundH1.on('connect', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.h1Connections.delete(socket as net.Socket);
      socket.on('error', () => socket.destroy());
      this.outboundProxy
        .connect(request, socket, head, (inner, rest) => this.sniff(inner, rest))
        .catch((error: unknown) => {
          this.options.log?.('warn', 'CONNECT failed', { err: String(error) });
          socket.destroy();
        });
    });
    // The app's HTTP/2 streams, served through the core API (no compatibility objects).
    this.outboundH2 = http2.createServer({ maxHeaderListPairs: H2_MAX_HEADER_LIST_PAIRS });
    this.outboundH2.on(
      'stream',
      (
        stream: http2.ServerHttp2Stream,
        headers: http2.IncomingHttpHeaders,
        _flags: number,
        rawHeaders: string[],
      ) => {
        stream.on('error', () => stream.destroy());
        // `Expect: 100-continue` is answered here at once: the body is read as it comes.
        if (String(headers.expect).toLowerCase() === '100-continue')
          stream.additionalHeaders({ ':status': 100 });
        this.outboundProxy
          .handle(new H2Exchange(stream, headers, rawHeaders))
          .catch((error: unknown) => failStream(stream, isGrpc(headers), 500, String(error)));
      },
    );
    // The app's HTTP/2 connections (gRPC) are told to finish and go when the sidecar stops.
    this.outboundH2.on('session', (session: http2.ServerHttp2Session) => {
      this.outboundSessions.add(session);
      session.once('close', () => this.outboundSessions.delete(session));
    });
    // Half-open allowed: an app that sends its FIN after a request still gets the answer.
    this.outboundServer = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      socket.setNoDelay(true);
      this.sniff(socket, Buffer.alloc(0));
    });
  }

  /** Starts the outbound and inbound listeners; resolves with the ports they got. */
  async listen(): Promise<{ outbound: number; inbound: number[] }> {
    const outbound = await listenOn(
      this.outboundServer,
      this.options.outbound.host,
      this.options.outbound.port,
    );
    const credentials = this.options.credentials();
    for (const port of this.options.inbound) {
      // The port it got (the settings may say 0: any free port).
      const bound = { port: port.port };
      // HTTP/2 only (mesh peers speak nothing else), served through the core API: no
      // compatibility objects per request. A client offering only HTTP/1.1 is refused in the
      // TLS handshake (no common ALPN protocol).
      const server = http2.createSecureServer({
        allowHTTP1: false,
        key: credentials.privateKeyPem,
        cert: credentials.certificateChainPem,
        ca: [...credentials.roots],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
        ALPNProtocols: ['h2'],
        noDelay: true,
        maxHeaderListPairs: H2_MAX_HEADER_LIST_PAIRS,
        unknownProtocolTimeout: 0,
      });
      server.on(
        'stream',
        (
          stream: http2.ServerHttp2Stream,
          headers: http2.IncomingHttpHeaders,
          flags: number,
          rawHeaders: string[],
        ) => {
          stream.on('error', () => stream.destroy());
          this.inboundProxy
            .stream(port, bound.port, stream, headers, flags, rawHeaders)
            .catch((error: unknown) => failStream(stream, false, 500, String(error)));
        },
      );
      // Before Node's HTTP/2 server sees the connection: one whose certificate is not an SVID
      // of this trust domain is closed without a byte of HTTP read or answered.
      server.prependListener('secureConnection', (socket: TLSSocket) => {
        if (!this.inboundProxy.admit(socket)) socket.destroy();
      });
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
      bound.port = await listenOn(server, this.options.inboundHost ?? '0.0.0.0', port.port);
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
    this.outboundProxy.configChanged(config);
    this.inboundProxy.configChanged(config);
  }

  /** The endpoints outlier detection has ejected now (`/debug/outliers`). */
  ejectedEndpoints(): Ejection[] {
    return this.outboundProxy.outliers.ejected();
  }

  /**
   * Stops gracefully: no new connections; peers are told to finish their requests here
   * and send new ones elsewhere (HTTP/2 GOAWAY), and requests in flight complete (up to 5 s).
   */
  async close(): Promise<void> {
    this.stopping = true;
    // HTTP/1.1 has no GOAWAY: idle connections are closed, busy ones say `Connection: close`
    // on their last response and close after it.
    for (const connection of this.framed) connection.stop();
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
    // Connections carried whole have no end to wait for: they are cut.
    for (const tunnel of this.outboundProxy.tunnels) tunnel.destroy();
    this.outboundProxy.close();
    this.inboundProxy.close();
  }

  /**
   * One outbound port for both protocols: the HTTP/2 connection preface decides. `socket`
   * is an app's connection, or what an app's CONNECT carries (`early`: bytes already read).
   */
  private sniff(socket: Duplex, early: Buffer): void {
    socket.on('error', () => socket.destroy());
    // A connection that says nothing is closed after the idle timeout.
    const idle = (): void => void socket.destroy();
    if (socket instanceof net.Socket) socket.setTimeout(this.outboundProxy.timeouts.idleMs, idle);
    const chunks: Buffer[] = early.length > 0 ? [early] : [];
    // A FIN before the protocol is known: nothing to answer, the connection closes.
    const onEnd = (): void => void socket.end();
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      const head = Buffer.concat(chunks);
      const seen = head.toString('latin1', 0, Math.min(head.length, H2_PREFACE.length));
      // Undecided while what arrived is still a prefix of the preface.
      if (seen.length < H2_PREFACE.length && H2_PREFACE.startsWith(seen)) return;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('timeout', idle);
      if (socket instanceof net.Socket) socket.setTimeout(0);
      socket.pause();
      if (seen === H2_PREFACE) {
        // The socket itself (its native handle: no JavaScript stream in between), with the
        // bytes already read put back: a new HTTP/2 session reads what is buffered first.
        // Not resumed here: the session reads from the handle from now on.
        socket.unshift(head);
        this.outboundH2.emit('connection', socket);
        return;
      }
      // HTTP/1.1: framed here, carried in L4 while its requests go to L4 ports.
      const connection = new OutboundH1Connection(socket, head, this.outboundProxy, (inner, buffered) =>
        this.perRequest(inner, buffered),
      );
      this.framed.add(connection);
      socket.once('close', () => this.framed.delete(connection));
      socket.resume();
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    if (early.length > 0) onData(Buffer.alloc(0));
  }

  /** An app's HTTP/1.1 connection to be served request by request by Node's HTTP/1.1 server (L7). */
  private perRequest(socket: Duplex, buffered: Buffer): void {
    if (buffered.length > 0) socket.unshift(buffered);
    this.h1Connections.set(socket as net.Socket, new Set());
    socket.once('close', () => this.h1Connections.delete(socket as net.Socket));
    this.outboundH1.emit('connection', socket);
    socket.resume();
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
}

/** Listens on `host:port` (0: any free port); resolves with the port it got. */
function listenOn(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
