import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable, Writable } from 'node:stream';

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
  // Headers the `Connection` header names are hop-by-hop too (rarely any: no set then).
  const connection = headers.connection;
  const named =
    connection === undefined
      ? undefined
      : new Set(
          String(connection)
            .split(',')
            .map((token) => token.trim().toLowerCase())
            .filter(Boolean),
        );
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */ || HOP_BY_HOP.has(name)) continue;
    if (named?.has(name) || (drop.length > 0 && drop.includes(name))) continue;
    // `te` may only say `trailers` in HTTP/2; gRPC needs it.
    if (name === 'te') {
      if (String(value).toLowerCase().includes('trailers')) out.te = 'trailers';
      continue;
    }
    out[name] = value;
  }
  return out;
}

/**
 * A request body on its way upstream: streamed as it arrives (gRPC streams flow both ways
 * at once), with its first `limit` bytes kept so that it can be sent again to another
 * endpoint. A longer body can only be sent once.
 */
export class ReplayableBody {
  private kept: Buffer[] | undefined = [];
  private size = 0;
  private ended = false;
  /** It was sent once (a second send needs all of it kept). */
  private started = false;
  private sink: Writable | undefined;
  private readonly resume = (): void => void this.source.resume();

  constructor(
    private readonly source: Readable,
    private readonly limit: number,
  ) {
    source.on('data', (chunk: Buffer) => {
      if (this.kept) {
        this.size += chunk.length;
        if (this.size > this.limit) this.kept = undefined;
        else this.kept.push(chunk);
      }
      const sink = this.sink;
      // A sink that is gone (reset, or answered and closed) never drains: the rest is dropped.
      if (!sink || sink.destroyed || sink.writableEnded) return;
      if (!sink.write(chunk)) {
        source.pause();
        sink.once('drain', this.resume);
      }
    });
    source.once('end', () => {
      this.ended = true;
      if (this.sink && !this.sink.destroyed && !this.sink.writableEnded) this.sink.end();
    });
    source.pause();
  }

  /** Whether it can (still) be sent from its start. */
  get replayable(): boolean {
    return this.kept !== undefined;
  }

  /** Sends the body into `sink`: what was kept so far, then the rest as it comes. */
  sendTo(sink: Writable): void {
    if (!this.kept && this.started) throw new Error('the body was too long to send again');
    this.started = true;
    this.sink?.off('drain', this.resume);
    this.sink = sink;
    for (const chunk of this.kept ?? []) sink.write(chunk);
    if (this.ended) sink.end();
    else this.source.resume();
  }

  /** No try is under way (a retry waits its turn): the body waits too, nothing of it lost. */
  hold(): void {
    this.source.pause();
    this.sink?.off('drain', this.resume);
    this.sink = undefined;
  }

  /** An answer is on its way: the body will not be sent again, so nothing more is kept. */
  commit(): void {
    this.kept = undefined;
  }

  /** Nowhere to send the rest: it is read and dropped (the connection stays usable). */
  discard(): void {
    this.kept = undefined;
    this.sink?.off('drain', this.resume);
    this.sink = undefined;
    this.source.resume();
  }
}

/** Whether a request has no body (HTTP/1: no length and no chunking; HTTP/2: it ended on its headers). */
export function hasNoBody(request: {
  headers: IncomingHttpHeaders;
  stream?: { endAfterHeaders: boolean };
}): boolean {
  if (request.stream) return request.stream.endAfterHeaders;
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

/**
 * Header fields a request may carry, on every hop: more get 431 at the first hop, and
 * nothing is sent on (HTTP/2 peers reset streams with many more, ENHANCE_YOUR_CALM).
 */
export const MAX_REQUEST_HEADERS = 100;

/** Field lines of a request (pseudo-headers not counted), from Node's raw name/value list. */
export function headerFieldCount(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.charCodeAt(0) !== 58 /* : */) count++;
  return count;
}

/** Lets HTTP/2 servers hand over requests with up to MAX_REQUEST_HEADERS fields, for a clean 431 beyond. */
export const H2_MAX_HEADER_LIST_PAIRS = 2 * MAX_REQUEST_HEADERS + 8;

/** Whether a request is gRPC (by its content type). */
export const isGrpc = (headers: IncomingHttpHeaders): boolean =>
  String(headers['content-type'] ?? '').startsWith('application/grpc');

/** gRPC status codes used by the proxies. */
export const GRPC = {
  DEADLINE_EXCEEDED: 4,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  RESOURCE_EXHAUSTED: 8,
} as const;

/** The gRPC status an HTTP status maps to, when the server sent none (gRPC's HTTP mapping). */
export function grpcStatusForHttp(status: number): number {
  if (status === 400) return GRPC.INTERNAL;
  if (status === 401) return 16;
  if (status === 403) return GRPC.PERMISSION_DENIED;
  if (status === 404) return GRPC.UNIMPLEMENTED;
  if (status === 429 || status === 502 || status === 503 || status === 504) return GRPC.UNAVAILABLE;
  return 2;
}

/** Fields whose repeats Node's HTTP parser drops (the first one counts), as the app would read them. */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * Flat header fields (`@causeway/http`) as the name-to-value record Node's HTTP server would
 * make of them, so that a rule reads a repeated field the way the per-request path (and a
 * Node app) reads it: most repeats joined with ", ", `cookie` with "; ", `set-cookie` a list,
 * and for fields that may appear once, the first.
 */
export function fieldsOf(flat: readonly string[]): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = {};
  for (let k = 0; k < flat.length; k += 2) {
    const name = flat[k]!;
    const value = flat[k + 1]!;
    const seen = fields[name];
    if (seen === undefined) fields[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(seen)) seen.push(value);
    else if (!FIRST_ONLY.has(name)) fields[name] = `${seen}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return fields;
}
