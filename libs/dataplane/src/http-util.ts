import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/** Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1, RFC 9113 §8.2.2). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);

/** The end-to-end headers of a request or response, pseudo-headers and hop-by-hop ones removed. */
export function endToEnd(headers: IncomingHttpHeaders, drop: readonly string[] = []): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(':') || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (drop.includes(name)) continue;
    // `te` may only say `trailers` in HTTP/2; gRPC needs it.
    if (name === 'te') {
      if (String(value).toLowerCase().includes('trailers')) out.te = 'trailers';
      continue;
    }
    out[name] = value;
  }
  return out;
}

/** A request body read up to a limit: whole (retryable), or its start and the rest still to come. */
export type BufferedBody =
  | { readonly complete: true; readonly data: Buffer }
  | { readonly complete: false; readonly data: Buffer; readonly rest: Readable };

/**
 * Reads a request body until it ends or passes `limit` bytes. A whole body can be sent
 * again to another endpoint; a longer one is streamed once, without retries.
 */
export function bufferBody(request: Readable, limit: number): Promise<BufferedBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        cleanup();
        request.pause();
        resolve({ complete: false, data: Buffer.concat(chunks), rest: request });
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ complete: true, data: Buffer.concat(chunks) });
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const cleanup = (): void => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
    };
    request.on('data', onData);
    request.once('end', onEnd);
    request.once('error', onError);
  });
}

/** Whether a request is gRPC (by its content type). */
export const isGrpc = (headers: IncomingHttpHeaders): boolean =>
  String(headers['content-type'] ?? '').startsWith('application/grpc');

/** gRPC status codes used by the proxies. */
export const GRPC = { UNIMPLEMENTED: 12, UNAVAILABLE: 14, PERMISSION_DENIED: 7, INTERNAL: 13 } as const;

/** The gRPC status an HTTP status maps to, when the server sent none (gRPC's HTTP mapping). */
export function grpcStatusForHttp(status: number): number {
  if (status === 400) return GRPC.INTERNAL;
  if (status === 401) return 16;
  if (status === 403) return GRPC.PERMISSION_DENIED;
  if (status === 404) return GRPC.UNIMPLEMENTED;
  if (status === 429 || status === 502 || status === 503 || status === 504) return GRPC.UNAVAILABLE;
  return 2;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * A request target as authorization sees it and the app gets it: origin form only (an
 * absolute or authority form is refused: undefined), unreserved characters decoded, other
 * escapes upper-cased, repeated slashes merged and dot segments resolved, so that
 * `/%61dmin`, `//admin` and `/x/../admin` are all `/admin`.
 */
export function normalizeTarget(target: string): string | undefined {
  if (!target.startsWith('/')) return undefined;
  const question = target.indexOf('?');
  const rawPath = question < 0 ? target : target.slice(0, question);
  const query = question < 0 ? '' : target.slice(question);
  const decoded = rawPath
    .replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
      const char = String.fromCharCode(Number.parseInt(hex, 16));
      return UNRESERVED.test(char) ? char : escape.toUpperCase();
    })
    .replace(/\/{2,}/g, '/');
  const segments: string[] = [];
  const parts = decoded.split('/').slice(1);
  for (const [index, segment] of parts.entries()) {
    if (segment === '.' || segment === '..') {
      if (segment === '..') segments.pop();
      // A trailing dot segment leaves a directory path.
      if (index === parts.length - 1) segments.push('');
      continue;
    }
    segments.push(segment);
  }
  return `/${segments.join('/')}${query}`;
}
