import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { endToEnd, grpcStatusForHttp, headerFieldCount, isGrpc, MAX_REQUEST_HEADERS } from './http-util.ts';

/** A request either of Node's servers hands over (HTTP/1.1 or HTTP/2). */
export type ProxyRequest = IncomingMessage | Http2ServerRequest;
export type ProxyResponse = ServerResponse | Http2ServerResponse;

/** What an exchange ended with, for metrics and the access log. */
export interface Outcome {
  readonly status: number;
  readonly grpcStatus: string;
}

/** Marks an inbound 503 that means "the app could not be reached": the caller may go elsewhere. */
export const UPSTREAM_FAILURE = 'x-causeway-upstream-failure';

/** Whether nothing can be written to a response any more (the caller went away). */
export function closed(response: ProxyResponse): boolean {
  return (
    response.destroyed ||
    response.writableEnded ||
    ('stream' in response && response.stream !== undefined && response.stream.destroyed)
  );
}

/** A refusal or failure the proxy itself answers: HTTP status, or a gRPC status for gRPC callers. */
export function failResponse(
  request: ProxyRequest,
  response: ProxyResponse,
  status: number,
  message: string,
): void {
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

/** More header fields than any hop accepts: answered 431 here (true), nothing sent on. */
export function refuseManyHeaders(request: ProxyRequest, response: ProxyResponse): boolean {
  const fields = headerFieldCount(request.rawHeaders);
  if (fields <= MAX_REQUEST_HEADERS) return false;
  failResponse(
    request,
    response,
    431,
    `${fields} header fields; at most ${MAX_REQUEST_HEADERS} are accepted`,
  );
  return true;
}

/**
 * The caller went away before the answer was complete: the upstream stream is cancelled.
 * (After a complete answer nothing is sent: a reset for a finished stream is an invalid frame
 * to the peer, and enough of them make it drop the connection.)
 */
export function cancelWhenCallerLeaves(response: ProxyResponse, stream: http2.ClientHttp2Stream): void {
  response.once('close', () => {
    if (!response.writableFinished && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  });
}

/** Answers with headers only, ending the stream on them (HTTP/2: one HEADERS frame). */
export function endWithHeaders(
  response: ProxyResponse,
  status: number,
  headers: http2.OutgoingHttpHeaders,
): void {
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
export function relay(
  stream: http2.ClientHttp2Stream,
  upstream: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
  flags: number,
  response: ProxyResponse,
): Promise<Outcome> {
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

/**
 * A refusal or failure the proxy answers on an HTTP/2 stream it serves through the core API
 * (no compatibility objects): HTTP status, or a trailers-only gRPC status for gRPC callers.
 */
export function failStream(
  stream: http2.ServerHttp2Stream,
  grpc: boolean,
  status: number,
  message: string,
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  if (grpc)
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusForHttp(status)),
        'grpc-message': encodeURIComponent(message),
      },
      { endStream: true },
    );
  else {
    stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
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
  upstream: http2.ClientHttp2Stream,
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

/** Whether a response belongs to Node's HTTP/1.1 server (it has no GOAWAY: see the sidecar's stop). */
export const isH1Response = (response: ProxyResponse): response is ServerResponse =>
  response instanceof http.ServerResponse;
