import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { endToEnd, grpcStatusForHttp, hasNoBody, isGrpc } from './http-util.ts';
import {
  failStream,
  relayToStream,
  UPSTREAM_FAILURE,
  type FailExtra,
  type Outcome,
  type UpstreamAnswer,
} from './responses.ts';

type UpstreamHeaders = http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;

/**
 * The app's side of one request that the outbound proxy serves per request: an exchange of
 * Node's HTTP/1.1 server (`H1Exchange`), or an HTTP/2 stream served through the core API
 * (`H2Exchange`, no compatibility objects).
 */
export interface AppExchange {
  readonly method: string;
  /** The request target as sent: origin form, or absolute form (the sidecar as HTTP proxy). */
  readonly target: string;
  /** `:authority`, or `Host`. */
  readonly authority: string;
  readonly headers: IncomingHttpHeaders;
  /** Name/value list as received (pseudo-headers included for HTTP/2). */
  readonly rawHeaders: readonly string[];
  /** The app's HTTP/2 connection it came on (one service per connection); none for HTTP/1.1. */
  readonly connection: object | undefined;
  /** The request body, or none (it ended with its head). */
  readonly body: Readable | undefined;
  /** Nothing can be written to the app any more (it went away, or the answer is complete). */
  readonly closed: boolean;
  /** The answer's head went to the app: a failure can only cut the exchange now. */
  readonly answered: boolean;
  /**
   * A refusal or failure the proxy answers: HTTP status, or a gRPC status for gRPC callers
   * (`extra.grpcStatus`, else one for the HTTP status); `extra.headers` go with it.
   */
  fail(status: number, message: string, extra?: FailExtra): void;
  /** Passes an upstream HTTP/2 answer on (see `relayToStream`); resolves when it is complete. */
  relay(upstream: UpstreamAnswer, headers: UpstreamHeaders, flags: number): Promise<Outcome>;
  /**
   * The app going away before the answer is complete cancels `upstream`. (After a complete
   * answer nothing is sent: a reset for a finished stream is an invalid frame to the peer,
   * and enough of them make it drop the connection.)
   */
  cancelWhenGone(upstream: UpstreamAnswer): void;
  /** Runs `listener` once the app's side of the exchange is closed (answered, or gone). */
  onClosed(listener: () => void): void;
  /** Cuts the exchange short (an answer was under way when its upstream failed). */
  abort(): void;
}

/** An HTTP/2 stream of the app's, served through the core API. */
export class H2Exchange implements AppExchange {
  /** The upstream stream of the current try (see `cancelWhenGone`). */
  private upstream: UpstreamAnswer | undefined;
  readonly method: string;
  readonly target: string;
  readonly authority: string;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    readonly headers: http2.IncomingHttpHeaders,
    readonly rawHeaders: readonly string[],
  ) {
    this.method = String(headers[':method'] ?? 'GET');
    this.target = String(headers[':path'] ?? '');
    this.authority = String(headers[':authority'] ?? headers.host ?? '');
  }

  get connection(): object | undefined {
    return this.stream.session;
  }

  get body(): Readable | undefined {
    return this.stream.endAfterHeaders ? undefined : this.stream;
  }

  get closed(): boolean {
    return this.stream.destroyed || this.stream.closed || this.stream.writableEnded;
  }

  get answered(): boolean {
    return this.stream.headersSent;
  }

  fail(status: number, message: string, extra?: FailExtra): void {
    failStream(this.stream, isGrpc(this.headers), status, message, extra);
  }

  relay(upstream: UpstreamAnswer, headers: UpstreamHeaders, flags: number): Promise<Outcome> {
    return relayToStream(upstream, headers, flags, this.stream);
  }

  cancelWhenGone(upstream: UpstreamAnswer): void {
    // One listener per exchange, for whichever try is the current one.
    const watching = this.upstream !== undefined;
    this.upstream = upstream;
    if (watching) return;
    this.stream.once('close', () => {
      const current = this.upstream!;
      if (!this.stream.writableFinished && !current.closed) current.close(http2.constants.NGHTTP2_CANCEL);
    });
  }

  onClosed(listener: () => void): void {
    if (this.stream.closed || this.stream.destroyed) return listener();
    this.stream.once('close', listener);
  }

  abort(): void {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/** An exchange of Node's HTTP/1.1 server (the per-request path for HTTP/1.1). */
export class H1Exchange implements AppExchange {
  /** The upstream stream of the current try (see `cancelWhenGone`). */
  private upstream: UpstreamAnswer | undefined;
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly connection = undefined;

  constructor(
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
  ) {
    this.method = request.method ?? 'GET';
    this.target = request.url ?? '/';
    this.authority = String(request.headers.host ?? '');
  }

  get headers(): IncomingHttpHeaders {
    return this.request.headers;
  }

  get rawHeaders(): readonly string[] {
    return this.request.rawHeaders;
  }

  get body(): Readable | undefined {
    return hasNoBody(this.request) ? undefined : this.request;
  }

  get closed(): boolean {
    return this.response.destroyed || this.response.writableEnded;
  }

  get answered(): boolean {
    return this.response.headersSent;
  }

  fail(status: number, message: string, extra?: FailExtra): void {
    const { request, response } = this;
    if (this.closed) return;
    if (response.headersSent) return void response.destroy();
    if (isGrpc(request.headers)) {
      response.writeHead(200, {
        ...extra?.headers,
        'content-type': 'application/grpc',
        'grpc-status': String(extra?.grpcStatus ?? grpcStatusForHttp(status)),
        'grpc-message': encodeURIComponent(message),
      });
      response.end();
      return;
    }
    response.writeHead(status, { ...extra?.headers, 'content-type': 'text/plain; charset=utf-8' });
    response.end(`${message}\n`);
    // Drain what the app is still sending.
    request.resume();
  }

  relay(upstream: UpstreamAnswer, headers: UpstreamHeaders, flags: number): Promise<Outcome> {
    const { response } = this;
    const status = Number(headers[':status']);
    let grpcStatus = String(headers['grpc-status'] ?? '');
    if (this.closed) {
      if (!upstream.closed) upstream.close(http2.constants.NGHTTP2_CANCEL);
      return Promise.resolve({ status: 499, grpcStatus });
    }
    // (The retry marker is the inbound sidecar's to set, never an app's.)
    response.writeHead(status, endToEnd(headers, [UPSTREAM_FAILURE]));
    if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) {
      response.end();
      return Promise.resolve({ status, grpcStatus });
    }
    upstream.on('trailers', (trailers) => {
      grpcStatus = String(trailers['grpc-status'] ?? grpcStatus);
      response.addTrailers(endToEnd(trailers) as Record<string, string>);
    });
    upstream.pipe(response);
    return new Promise((resolve) => {
      upstream.once('end', () => resolve({ status, grpcStatus }));
      upstream.once('close', () => resolve({ status, grpcStatus }));
    });
  }

  cancelWhenGone(upstream: UpstreamAnswer): void {
    // One listener per exchange, for whichever try is the current one.
    const watching = this.upstream !== undefined;
    this.upstream = upstream;
    if (watching) return;
    this.response.once('close', () => {
      const current = this.upstream!;
      if (!this.response.writableFinished && !current.closed) current.close(http2.constants.NGHTTP2_CANCEL);
    });
  }

  onClosed(listener: () => void): void {
    if (this.response.destroyed || this.response.closed) return listener();
    this.response.once('close', listener);
  }

  abort(): void {
    this.response.destroy();
  }
}
