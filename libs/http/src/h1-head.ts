/**
 * Strict HTTP/1.1 heads (RFC 9112 §2-§6): the start line and field lines of a request or a
 * response, and how the body that follows is framed. Pure over Buffers; never throws.
 */
import { bytesEqualIgnoreCase } from './h1-chars.ts';
import { REQUEST_ERRORS, RESPONSE_ERRORS, type H1Error, type H1ErrorCode } from './h1-errors.ts';
import * as fields from './h1-fields.ts';
import { FAILED, HeadScan, INCOMPLETE, OTHER_NAME_UPPER, scanHead, SPAN } from './h1-head-scan.ts';
import { DEFAULT_H1_LIMITS, type H1Limits } from './h1-limits.ts';

// Bound once to module constants: a loader that compiles modules to CommonJS (tsx on Node 20)
// turns every use of an import into a getter call.
const {
  CONNECTION,
  CONNECTION_CLOSE,
  CONNECTION_KEEP_ALIVE,
  CONNECTION_UPGRADE,
  CONTENT_LENGTH,
  CONTENT_LENGTH_INVALID,
  CONTENT_LENGTH_TOO_LARGE,
  connectionOptions,
  EXPECT,
  FIELD_NAMES,
  HOST,
  isHostAndPort,
  isTargetForm,
  knownMethod,
  latin1,
  parseContentLength,
  TRANSFER_ENCODING,
  transferCodings,
  UPGRADE,
} = fields;

/** How the body after a head ends (RFC 9112 §6.3). */
export type BodyFraming =
  /** No body: the next message starts right after the head. */
  | { readonly type: 'none' }
  /** Exactly `length` bytes (Content-Length). */
  | { readonly type: 'length'; readonly length: number }
  /** Chunked transfer coding, ending with the last chunk and the trailer section. */
  | { readonly type: 'chunked' }
  /** Responses only: everything until the server closes the connection. */
  | { readonly type: 'close' };

export type HeadResult<T> =
  /** The head is not complete yet: call again with the same bytes from `start` and more after them. */
  | { readonly kind: 'incomplete' }
  /** The head is refused; answer `status` (requests) or 502 (responses) and close the connection. */
  | ({ readonly kind: 'error' } & H1Error)
  /** A complete head; the body (if any) starts at `end`, just past the empty line. */
  | ({ readonly kind: 'head'; readonly end: number } & T);

export { HeadScan };

export interface RequestHead {
  /** One of the methods Node's parser knows (http.METHODS); others are refused with 501. */
  readonly method: string;
  /** origin-form, absolute-form, authority-form (CONNECT) or `*` (OPTIONS), as received. */
  readonly target: string;
  /** 1 for HTTP/1.1, 0 for HTTP/1.0. */
  readonly version: 0 | 1;
  /** Flat [name, value, ...] in arrival order; names lower-case, values without surrounding OWS. */
  headers: string[];
  readonly body: BodyFraming;
  /** Whether the connection may carry another request after this one. */
  readonly keepAlive: boolean;
  /** The Host field (exactly one in HTTP/1.1, optional in HTTP/1.0). For absolute-form, route on the target. */
  readonly host: string | undefined;
  /** CONNECT, or HTTP/1.1 `Connection: upgrade` with a non-empty Upgrade: the connection may turn into a tunnel. */
  readonly upgrade: boolean;
  /** HTTP/1.1 `Expect: 100-continue`: the client may wait for a 100 before sending the body. */
  readonly expectContinue: boolean;
}

export interface ResponseHead {
  readonly status: number;
  /** The reason phrase as received (may be empty). */
  readonly reason: string;
  readonly version: 0 | 1;
  /** Flat [name, value, ...] in arrival order; names lower-case, values without surrounding OWS. */
  headers: string[];
  readonly body: BodyFraming;
  /** Whether the connection may carry another request after this response. */
  readonly keepAlive: boolean;
  /**
   * A 1xx other than 101 (100 Continue, 103 Early Hints): no body, and the final response's head
   * follows at `end`; forward it and parse again from `end` with the same request method.
   */
  readonly interim: boolean;
  /** 101 Switching Protocols, or a 2xx to CONNECT: after `end` the connection is a byte tunnel. */
  readonly tunnel: boolean;
}

/** The first value of field `name` (lower-case) in flat `headers`, or undefined. */
export function headerValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

const NO_BODY: BodyFraming = Object.freeze({ type: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ type: 'chunked' });
const UNTIL_CLOSE: BodyFraming = Object.freeze({ type: 'close' });
const INCOMPLETE_RESULT = Object.freeze({ kind: 'incomplete' as const });
const ONLY_CHUNKED: readonly string[] = Object.freeze(['chunked']);

type Failures = Readonly<Record<H1ErrorCode, { readonly kind: 'error' } & H1Error>>;

function failures(errors: Readonly<Record<H1ErrorCode, H1Error>>) {
  const out = {} as Record<H1ErrorCode, { readonly kind: 'error' } & H1Error>;
  for (const code of Object.keys(errors) as H1ErrorCode[])
    out[code] = Object.freeze({ kind: 'error' as const, ...errors[code] });
  return out;
}
const REQUEST_FAILURES: Failures = failures(REQUEST_ERRORS);
const RESPONSE_FAILURES: Failures = failures(RESPONSE_ERRORS);

/** The end of the bytes a head must fit in, or -1 for a `start` outside the buffer. */
function headLimit(buf: Buffer, start: number, limits: H1Limits): number {
  if (!Number.isInteger(start) || start < 0 || start > buf.length) return -1;
  // Offsets within a head are kept as int32: no head may reach 2 GiB, whatever the limit says.
  return Math.min(buf.length, start + Math.min(limits.maxHeadBytes, 0x7fff_ffff));
}

/** The scan of calls that bring none: each such call reads its head from `start` anew. */
const ONE_SHOT = new HeadScan();

/**
 * Scans the head at `start`: its end offset, or the result to return when it is incomplete,
 * too large or malformed.
 */
function scanned(
  buf: Buffer,
  start: number,
  limits: H1Limits,
  scan: HeadScan | undefined,
  response: boolean,
  failures: Failures,
): number | HeadResult<never> {
  const lim = headLimit(buf, start, limits);
  if (lim < 0) return failures.CAUSEWAY_H1_INVALID_OFFSET;
  const progress = scan ?? ONE_SHOT;
  if (scan === undefined) ONE_SHOT.reset();
  const end = scanHead(buf, start, lim, limits, progress, response);
  if (end >= 0) return end;
  if (end === INCOMPLETE && lim === buf.length) return INCOMPLETE_RESULT;
  const code = end === FAILED ? progress.failure : 'CAUSEWAY_H1_HEAD_TOO_LARGE';
  progress.reset();
  return failures[code];
}

/**
 * Parses the request head at `buf[start..]`. Returns `incomplete` until the empty line that
 * ends it has arrived (call again with more bytes appended, passing the same `scan` to keep
 * that linear), `error` with the status to answer, or the head with its framing.
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  limits: H1Limits = DEFAULT_H1_LIMITS,
  scan?: HeadScan,
): HeadResult<RequestHead> {
  const end = scanned(buf, start, limits, scan, false, REQUEST_FAILURES);
  if (typeof end !== 'number') return end;
  const progress = scan ?? ONE_SHOT;
  const result = requestHead(buf, start, end, progress);
  progress.reset();
  return result;
}

/**
 * Parses the response head at `buf[start..]` to a request made with `requestMethod` (HEAD and
 * CONNECT change the framing). Errors carry status 502. After an `interim` (1xx) head, parse
 * the next head from `end`: it answers the same request.
 */
export function parseResponseHead(
  buf: Buffer,
  start: number,
  requestMethod: string,
  limits: H1Limits = DEFAULT_H1_LIMITS,
  scan?: HeadScan,
): HeadResult<ResponseHead> {
  const end = scanned(buf, start, limits, scan, true, RESPONSE_FAILURES);
  if (typeof end !== 'number') return end;
  const progress = scan ?? ONE_SHOT;
  const result = responseHead(buf, start, end, progress, requestMethod);
  progress.reset();
  return result;
}

// What the field lines of the head just scanned say about framing and the connection.
let contentLength = -1;
let transferEncodings = 0;
let chunkedOnly = false;
let hostLine = -1;
let hostCount = 0;
let hostValid = false;
let connection = 0;
let upgradeNamed = false;
let expectCount = 0;
let expectsContinue = false;

/** Reads the fields that framing depends on; returns the first fault found, if any. */
function readFraming(buf: Buffer, start: number, scan: HeadScan): H1ErrorCode | undefined {
  contentLength = -1;
  transferEncodings = 0;
  chunkedOnly = false;
  hostLine = -1;
  hostCount = 0;
  hostValid = false;
  connection = 0;
  upgradeNamed = false;
  expectCount = 0;
  expectsContinue = false;
  const spans = scan.spans;
  for (let line = 0; line < scan.fields; line++) {
    const at = SPAN * line;
    const known = spans[at + 4]!;
    if (known < 0 || known > EXPECT) continue;
    const valueStart = start + spans[at + 2]!;
    const valueEnd = start + spans[at + 3]!;
    // Node's parser refuses a tab after these two values (not before); so do we, to refuse at
    // least what it refuses.
    const tabAfter =
      (known === CONTENT_LENGTH || known === TRANSFER_ENCODING) &&
      hasTab(buf, valueEnd, start + spans[at + 5]!);
    switch (known) {
      case CONTENT_LENGTH: {
        if (tabAfter) return 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID';
        if (contentLength !== -1) return 'CAUSEWAY_H1_CONTENT_LENGTH_DUPLICATE';
        const length = parseContentLength(buf, valueStart, valueEnd);
        if (length === CONTENT_LENGTH_INVALID) return 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID';
        if (length === CONTENT_LENGTH_TOO_LARGE) return 'CAUSEWAY_H1_CONTENT_LENGTH_TOO_LARGE';
        contentLength = length;
        break;
      }
      case TRANSFER_ENCODING:
        if (tabAfter) return 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID';
        chunkedOnly = ++transferEncodings === 1 && bytesEqualIgnoreCase(buf, valueStart, valueEnd, 'chunked');
        break;
      case HOST:
        hostCount++;
        hostLine = line;
        hostValid = isHostAndPort(buf, valueStart, valueEnd, false);
        break;
      case CONNECTION:
        connection |= connectionOptions(buf, valueStart, valueEnd);
        break;
      case UPGRADE:
        upgradeNamed ||= valueEnd > valueStart;
        break;
      case EXPECT:
        expectsContinue =
          ++expectCount === 1 && bytesEqualIgnoreCase(buf, valueStart, valueEnd, '100-continue');
        break;
    }
  }
  return undefined;
}

function hasTab(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === 0x09) return true;
  return false;
}

/** The flat header list of the scanned fields, cut from `text` (the head from `start`, decoded once). */
function decodeFields(text: string, scan: HeadScan): string[] {
  const headers = new Array<string>(2 * scan.fields);
  const spans = scan.spans;
  for (let line = 0; line < scan.fields; line++) {
    const at = SPAN * line;
    const known = spans[at + 4]!;
    const name =
      known >= 0
        ? FIELD_NAMES[known]!
        : known === OTHER_NAME_UPPER
          ? text.slice(spans[at]!, spans[at + 1]!).toLowerCase()
          : text.slice(spans[at]!, spans[at + 1]!);
    headers[2 * line] = name;
    headers[2 * line + 1] = text.slice(spans[at + 2]!, spans[at + 3]!);
  }
  return headers;
}

/** The values of every field named FIELD_NAMES[`index`], in order. */
function valuesOf(headers: readonly string[], index: number): string[] {
  const name = FIELD_NAMES[index];
  const values: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) values.push(headers[i + 1]!);
  return values;
}

function keepsAlive(minor: number, options: number): boolean {
  if ((options & CONNECTION_CLOSE) !== 0) return false;
  return minor === 1 || (options & CONNECTION_KEEP_ALIVE) !== 0;
}

function requestHead(buf: Buffer, start: number, end: number, scan: HeadScan): HeadResult<RequestHead> {
  const method = knownMethod(buf, start + scan.methodStart, start + scan.methodEnd);
  if (method === undefined) return REQUEST_FAILURES.CAUSEWAY_H1_METHOD_UNKNOWN;
  if (!isTargetForm(buf, start + scan.targetStart, start + scan.targetEnd, method))
    return REQUEST_FAILURES.CAUSEWAY_H1_TARGET_INVALID;
  const minor = scan.minor as 0 | 1;
  // Each refusal from here on closes a way for two hops to disagree about a request:
  // 1. Content-Length and Transfer-Encoding together: one hop counts bytes, the next reads
  //    chunks, and the rest of the body becomes a request of the attacker's (CL.TE, TE.CL).
  // 2. Two Content-Lengths, or a list: hops pick different ones.
  // 3. A coding list other than exactly `chunked`: a hop that does not know a coding falls back
  //    to Content-Length or to the end of the connection.
  // 4. Transfer-Encoding in HTTP/1.0: an HTTP/1.0 hop ignores it.
  // 5. Two Hosts: routing and authorization see one, the application the other.
  const fault = readFraming(buf, start, scan);
  if (fault !== undefined) return REQUEST_FAILURES[fault];
  if (hostCount > 1) return REQUEST_FAILURES.CAUSEWAY_H1_HOST_DUPLICATE;
  if (hostCount === 0 && minor === 1) return REQUEST_FAILURES.CAUSEWAY_H1_HOST_MISSING;
  if (hostCount === 1 && !hostValid) return REQUEST_FAILURES.CAUSEWAY_H1_HOST_INVALID;
  // RFC 9110 §10.1.1: 100-continue is the only expectation; those in HTTP/1.0 are ignored.
  if (expectCount > 0 && minor === 1 && !expectsContinue)
    return REQUEST_FAILURES.CAUSEWAY_H1_EXPECTATION_UNSUPPORTED;
  if (transferEncodings > 0) {
    if (minor === 0) return REQUEST_FAILURES.CAUSEWAY_H1_TRANSFER_ENCODING_HTTP10;
    if (contentLength !== -1) return REQUEST_FAILURES.CAUSEWAY_H1_TRANSFER_ENCODING_WITH_LENGTH;
  }
  const isConnect = method === 'CONNECT';
  // RFC 9110 §9.3.6: a CONNECT request has no content.
  if (isConnect && (transferEncodings > 0 || contentLength > 0))
    return REQUEST_FAILURES.CAUSEWAY_H1_CONNECT_BODY;

  const text = latin1(buf, start, end);
  const headers = decodeFields(text, scan);
  let body: BodyFraming = NO_BODY;
  if (transferEncodings > 0) {
    if (!chunkedOnly) return REQUEST_FAILURES[requestCodingsFault(valuesOf(headers, TRANSFER_ENCODING))];
    body = CHUNKED;
  } else if (contentLength !== -1 && !isConnect) {
    body = { type: 'length', length: contentLength };
  }
  return {
    kind: 'head',
    end,
    method,
    target: text.slice(scan.targetStart, scan.targetEnd),
    version: minor,
    headers,
    body,
    keepAlive: keepsAlive(minor, connection),
    host: hostLine < 0 ? undefined : headers[2 * hostLine + 1],
    upgrade: isConnect || (minor === 1 && (connection & CONNECTION_UPGRADE) !== 0 && upgradeNamed),
    expectContinue: expectsContinue && minor === 1,
  };
}

/**
 * Refusing a request's Transfer-Encoding other than one `chunked`: 501 for a well-formed list
 * of codings ending in one chunked (RFC 9112 §6.1: a coding not understood), else 400.
 */
function requestCodingsFault(values: readonly string[]): H1ErrorCode {
  const codings = transferCodings(values);
  if (codings === undefined) return 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID';
  const chunked = codings.indexOf('chunked');
  return chunked === codings.length - 1 && codings.length > 1
    ? 'CAUSEWAY_H1_TRANSFER_CODING_UNSUPPORTED'
    : 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID';
}

function responseHead(
  buf: Buffer,
  start: number,
  end: number,
  scan: HeadScan,
  requestMethod: string,
): HeadResult<ResponseHead> {
  const status = scan.status;
  const minor = scan.minor as 0 | 1;
  const connected = requestMethod === 'CONNECT' && status >= 200 && status < 300;
  const tunnel = status === 101 || connected;
  const fault = readFraming(buf, start, scan);
  // RFC 9110 §9.3.6: a client ignores framing fields in a 2xx to CONNECT.
  if (fault !== undefined && !connected) return RESPONSE_FAILURES[fault];
  const text = latin1(buf, start, end);
  const headers = decodeFields(text, scan);

  let body: BodyFraming = UNTIL_CLOSE;
  if (!connected) {
    if (transferEncodings > 0) {
      if (minor === 0) return RESPONSE_FAILURES.CAUSEWAY_H1_TRANSFER_ENCODING_HTTP10;
      if (contentLength !== -1) return RESPONSE_FAILURES.CAUSEWAY_H1_TRANSFER_ENCODING_WITH_LENGTH;
      const codings = chunkedOnly ? ONLY_CHUNKED : transferCodings(valuesOf(headers, TRANSFER_ENCODING));
      if (codings === undefined) return RESPONSE_FAILURES.CAUSEWAY_H1_TRANSFER_ENCODING_INVALID;
      const chunked = codings.indexOf('chunked');
      if (chunked !== -1 && chunked !== codings.length - 1)
        return RESPONSE_FAILURES.CAUSEWAY_H1_TRANSFER_ENCODING_INVALID;
      // Without a final chunked, the body runs until the server closes (RFC 9112 §6.3 item 4).
      body = chunked === -1 ? UNTIL_CLOSE : CHUNKED;
    } else if (contentLength !== -1) {
      body = { type: 'length', length: contentLength };
    }
  }
  if (tunnel || status < 200 || status === 204 || status === 304 || requestMethod === 'HEAD') body = NO_BODY;

  return {
    kind: 'head',
    end,
    status,
    reason: text.slice(scan.targetStart, scan.targetEnd),
    version: minor,
    headers,
    body,
    keepAlive: !tunnel && body !== UNTIL_CLOSE && keepsAlive(minor, connection),
    interim: status < 200 && status !== 101,
    tunnel,
  };
}
