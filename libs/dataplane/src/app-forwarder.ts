import http, { type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { endToEnd, hasNoBody } from './http-util.ts';
import {
  cancelWhenCallerLeaves,
  closed,
  relay,
  UPSTREAM_FAILURE,
  type Outcome,
  type ProxyRequest,
  type ProxyResponse,
} from './responses.ts';

/**
 * The inbound side's last hop: a request that passed authorization goes to the app on this
 * host, over kept-alive HTTP/1.1 connections or one HTTP/2 cleartext session per app port.
 */
export class AppForwarder {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly sessions = new Map<number, http2.ClientHttp2Session>();

  constructor(private readonly appHost: string) {}

  /** Forwards over HTTP/1.1; resolves when the answer has been passed on (or failed). */
  h1(
    appPort: number,
    request: ProxyRequest,
    response: ProxyResponse,
    headers: http.OutgoingHttpHeaders,
    target: string,
  ): Promise<Outcome> {
    return new Promise((resolve) => {
      const upstream = http.request({
        host: this.appHost,
        port: appPort,
        method: request.method,
        path: target,
        headers: { ...headers, host: String(request.headers[':authority'] ?? request.headers.host ?? '') },
        agent: this.agent,
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
        resolve(appUnreachable(response, error));
      });
      // Only an unfinished exchange is cut: a finished one keeps its kept-alive connection.
      response.once('close', () => {
        if (!response.writableFinished) upstream.destroy();
      });
      if (hasNoBody(request)) upstream.end();
      else request.pipe(upstream);
    });
  }

  /** Forwards over HTTP/2 cleartext (gRPC); trailers and trailers-only answers pass as they are. */
  h2(
    appPort: number,
    request: ProxyRequest,
    response: ProxyResponse,
    headers: http2.OutgoingHttpHeaders,
    target: string,
  ): Promise<Outcome> {
    return new Promise((resolve) => {
      const empty = hasNoBody(request);
      const stream = this.session(appPort).request(
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
        resolve(appUnreachable(response, error));
      });
      cancelWhenCallerLeaves(response, stream);
      if (!empty) request.pipe(stream);
    });
  }

  /** Closes the app connections (after the requests that used them have finished). */
  close(): void {
    for (const session of this.sessions.values()) session.close();
    this.agent.destroy();
  }

  private session(appPort: number): http2.ClientHttp2Session {
    const existing = this.sessions.get(appPort);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = http2.connect(`http://${this.appHost}:${appPort}`);
    session.on('error', () => {});
    session.on('close', () => {
      if (this.sessions.get(appPort) === session) this.sessions.delete(appPort);
    });
    session.unref();
    this.sessions.set(appPort, session);
    return session;
  }
}

/**
 * The app did not answer: a 503 that tells the calling sidecar it may go elsewhere, when
 * the request provably never reached the app; a 502 otherwise.
 */
function appUnreachable(response: ProxyResponse, error: Error & { code?: string }): Outcome {
  if (closed(response)) return { status: 499, grpcStatus: '' };
  if (response.headersSent) {
    response.destroy();
    return { status: 502, grpcStatus: '' };
  }
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
  return { status, grpcStatus: '' };
}
