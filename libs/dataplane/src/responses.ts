import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { endToEnd, grpcStatusForHttp } from './http-util.ts';

/**
 * The answer of one try as it comes from upstream: an HTTP/2 stream (trailers as a
 * `trailers` event), or an HTTP/1.1 answer read from a framed tunnel (its body's content;
 * a chunked body's trailer fields are not passed on). `close` cancels it.
 */
export type UpstreamAnswer = Readable & { close(code?: number): void };

/** What an exchange ended with, for metrics and the access log. */
export interface Outcome {
  readonly status: number;
  readonly grpcStatus: string;
}

/** What a proxy's own answer may carry besides its status and message. */
export interface FailExtra {
  /** The gRPC status for gRPC callers (default: the one for the HTTP status). */
  readonly grpcStatus?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Marks an inbound 503 that means "the app could not be reached": the caller may go elsewhere. */
export const UPSTREAM_FAILURE = 'x-causeway-upstream-failure';

/**
 * A refusal or failure the proxy answers on an HTTP/2 stream it serves through the core API
 * (no compatibility objects): HTTP status, or a trailers-only gRPC status for gRPC callers.
 */
export function failStream(
  stream: http2.ServerHttp2Stream,
  grpc: boolean,
  status: number,
  message: string,
  extra?: FailExtra,
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  if (grpc)
    stream.respond(
      {
        ...extra?.headers,
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(extra?.grpcStatus ?? grpcStatusForHttp(status)),
        'grpc-message': encodeURIComponent(message),
      },
      { endStream: true },
    );
  else {
    stream.respond({ ...extra?.headers, ':status': status, 'content-type': 'text/plain; charset=utf-8' });
    stream.end(`${message}\n`);
  }
  // Drain what the caller is still sending.
  stream.resume();
}

/**
 * Passes an HTTP/2 answer on to a stream served through the core API: a trailers-only answer
 * (how gRPC answers errors) stays trailers-only, trailers follow the body, and a caller that
 * leaves cancels the answer. Resolves with the status and gRPC status.
 */
export function relayToStream(
  upstream: UpstreamAnswer,
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
  flags: number,
  stream: http2.ServerHttp2Stream,
): Promise<Outcome> {
  const status = Number(headers[':status']);
  let grpcStatus = String(headers['grpc-status'] ?? '');
  if (stream.destroyed || stream.closed) {
    if (!upstream.closed) upstream.close(http2.constants.NGHTTP2_CANCEL);
    return Promise.resolve({ status: 499, grpcStatus });
  }
  // (The retry marker is the inbound sidecar's to set, never an app's.)
  const out = { ...endToEnd(headers, [UPSTREAM_FAILURE]), ':status': status };
  if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) {
    stream.respond(out, { endStream: true });
    return Promise.resolve({ status, grpcStatus });
  }
  let trailers: http2.OutgoingHttpHeaders = {};
  upstream.once('trailers', (received) => {
    grpcStatus = String(received['grpc-status'] ?? grpcStatus);
    trailers = endToEnd(received);
  });
  stream.respond(out, { waitForTrailers: true });
  stream.once('wantTrailers', () => {
    if (!stream.destroyed) stream.sendTrailers(trailers);
  });
  upstream.pipe(stream);
  return new Promise((resolve) => {
    upstream.once('end', () => resolve({ status, grpcStatus }));
    upstream.once('close', () => {
      // Cut short: the caller must see it, not a complete answer.
      if (!upstream.readableEnded && !stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      resolve({ status, grpcStatus });
    });
  });
}
