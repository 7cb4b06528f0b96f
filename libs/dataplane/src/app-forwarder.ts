import http from 'node:http';
import http2 from 'node:http2';
import { endToEnd } from './http-util.ts';
import { failStream, relayToStream, UPSTREAM_FAILURE, type Outcome } from './responses.ts';

/**
 * The inbound side's last hop: a request that passed authorization goes to the app on this
 * host, over kept-alive HTTP/1.1 connections or one HTTP/2 cleartext session per app port.
 */
export class AppForwarder {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly sessions = new Map<number, http2.ClientHttp2Session>();

  constructor(private readonly appHost: string) {}

  /**
   * Forwards a request read from an HTTP/2 stream (the core API: no compatibility objects) to
   * the app over HTTP/1.1; resolves when the answer has been passed on (or failed).
   */
  h1Stream(
    appPort: number,
    stream: http2.ServerHttp2Stream,
    method: string,
    headers: http.OutgoingHttpHeaders,
    target: string,
    authority: string,
    empty: boolean,
  ): Promise<Outcome> {
    return new Promise((resolve) => {
      const upstream = http.request({
        host: this.appHost,
        port: appPort,
        method,
        path: target,
        headers: { ...headers, host: authority },
        agent: this.agent,
      });
      let answered = false;
      upstream.on('response', (reply) => {
        answered = true;
        const status = reply.statusCode ?? 502;
        if (stream.destroyed || stream.closed) {
          reply.destroy();
          return resolve({ status: 499, grpcStatus: '' });
        }
        if (status < 200 || status > 599) {
          // HTTP/2 cannot carry it (1xx, or out of range): the app's answer is unusable.
          reply.destroy();
          failStream(stream, false, 502, `the app answered status ${status}`);
          return resolve({ status: 502, grpcStatus: '' });
        }
        stream.respond({ ...endToEnd(reply.headers, [UPSTREAM_FAILURE]), ':status': status });
        reply.pipe(stream);
        // 'close' too: an answer cut short has no 'end'.
        reply.once('end', () => resolve({ status, grpcStatus: '' }));
        reply.once('close', () => {
          if (!reply.complete && !stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          resolve({ status, grpcStatus: '' });
        });
      });
      upstream.on('error', (error: Error & { code?: string }) => {
        if (answered) return void stream.destroy();
        resolve(appUnreachableOnStream(stream, error));
      });
      // Only an unfinished exchange is cut: a finished one keeps its kept-alive connection.
      stream.once('close', () => {
        if (!stream.writableFinished) upstream.destroy();
      });
      if (empty) upstream.end();
      else stream.pipe(upstream);
    });
  }

  /** Forwards a request read from an HTTP/2 stream to the app over HTTP/2 cleartext (gRPC). */
  h2Stream(
    appPort: number,
    stream: http2.ServerHttp2Stream,
    headers: http2.OutgoingHttpHeaders,
    empty: boolean,
  ): Promise<Outcome> {
    return new Promise((resolve) => {
      const upstream = this.session(appPort).request(headers, { endStream: empty });
      let answered = false;
      upstream.on('response', (reply, flags) => {
        answered = true;
        void relayToStream(upstream, reply, flags, stream).then(resolve);
      });
      upstream.on('error', (error) => {
        if (answered) return void stream.destroy();
        resolve(appUnreachableOnStream(stream, error));
      });
      // The caller left before the answer was complete: the app's stream is cancelled.
      stream.once('close', () => {
        if (!stream.writableFinished && !upstream.closed) upstream.close(http2.constants.NGHTTP2_CANCEL);
      });
      if (!empty) stream.pipe(upstream);
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

/** Whether an error proves the request never reached the app (no connection was made). */
function notDelivered(error: Error & { code?: string }): boolean {
  return /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ENOTFOUND/.test(
    `${error.code ?? ''} ${error.message}`,
  );
}

/** `appUnreachable` for a stream served through the core API. */
function appUnreachableOnStream(stream: http2.ServerHttp2Stream, error: Error & { code?: string }): Outcome {
  if (stream.destroyed || stream.closed) return { status: 499, grpcStatus: '' };
  if (stream.headersSent) {
    stream.destroy();
    return { status: 502, grpcStatus: '' };
  }
  const unreachable = notDelivered(error);
  const status = unreachable ? 503 : 502;
  stream.respond({
    ':status': status,
    ...(unreachable ? { [UPSTREAM_FAILURE]: 'connect' } : {}),
    'content-type': 'text/plain',
  });
  stream.end(`the app ${unreachable ? 'is unreachable' : 'failed'}: ${error.message}\n`);
  return { status, grpcStatus: '' };
}
