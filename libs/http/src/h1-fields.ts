/**
 * The field values and start-line parts whose meaning the framing depends on: Content-Length,
 * Transfer-Encoding, Connection, Host, the request-target forms and the method.
 */
import * as chars from './h1-chars.ts';

// Imports bound once to module constants: a loader that compiles modules to CommonJS (tsx on
// Node 20) turns every use of an import into a getter call, which per-byte loops cannot afford.
const { bytesEqualIgnoreCase, CHAR, COLON, COMMA, DIGIT, HEXDIG, HTAB, LOWER, REG_NAME, SP, TCHAR } = chars;

interface Latin1Buffer {
  latin1Slice(start: number, end: number): string;
}

/** Bytes `from..to` as a string, one char per byte (no UTF-8 decoding: HTTP/1.1 heads are octets). */
export function latin1(buf: Buffer, from: number, to: number): string {
  return (buf as unknown as Latin1Buffer).latin1Slice(from, to);
}

function byLength(words: readonly string[]): ReadonlyArray<readonly string[] | undefined> {
  const table: string[][] = [];
  for (const word of words) (table[word.length] ??= []).push(word);
  return table;
}

/**
 * Request methods forwarded: the ones Node's own parser accepts (http.METHODS on Node 20 and
 * 24), so that nothing reaches an application that its own server would have refused.
 */
export const KNOWN_METHODS: readonly string[] = Object.freeze([
  'ACL',
  'BIND',
  'CHECKOUT',
  'CONNECT',
  'COPY',
  'DELETE',
  'GET',
  'HEAD',
  'LINK',
  'LOCK',
  'M-SEARCH',
  'MERGE',
  'MKACTIVITY',
  'MKCALENDAR',
  'MKCOL',
  'MOVE',
  'NOTIFY',
  'OPTIONS',
  'PATCH',
  'POST',
  'PROPFIND',
  'PROPPATCH',
  'PURGE',
  'PUT',
  'QUERY',
  'REBIND',
  'REPORT',
  'SEARCH',
  'SOURCE',
  'SUBSCRIBE',
  'TRACE',
  'UNBIND',
  'UNLINK',
  'UNLOCK',
  'UNSUBSCRIBE',
]);
const METHODS_BY_LENGTH = byLength(KNOWN_METHODS);

/** The method spelled by bytes `from..to` (case-sensitive), or undefined when it is not a known one. */
export function knownMethod(buf: Buffer, from: number, to: number): string | undefined {
  const candidates = METHODS_BY_LENGTH[to - from];
  if (candidates === undefined) return undefined;
  for (const method of candidates) {
    let k = 0;
    while (k < method.length && buf[from + k] === method.charCodeAt(k)) k++;
    if (k === method.length) return method;
  }
  return undefined;
}

/**
 * Field names recognised without decoding: the ones framing depends on first (at fixed
 * indexes), then names common enough that sharing one string beats slicing and lower-casing.
 */
export const FIELD_NAMES: readonly string[] = [
  'content-length',
  'transfer-encoding',
  'host',
  'connection',
  'upgrade',
  'expect',
  'accept',
  'accept-encoding',
  'accept-language',
  'authorization',
  'cache-control',
  'content-encoding',
  'content-type',
  'cookie',
  'date',
  'etag',
  'keep-alive',
  'last-modified',
  'location',
  'origin',
  'referer',
  'server',
  'set-cookie',
  'te',
  'traceparent',
  'tracestate',
  'user-agent',
  'vary',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
];
export const CONTENT_LENGTH = 0;
export const TRANSFER_ENCODING = 1;
export const HOST = 2;
export const CONNECTION = 3;
export const UPGRADE = 4;
export const EXPECT = 5;

/** Names are told apart by length, first and last letter before any full comparison. */
const fieldKey = (length: number, first: number, last: number): number =>
  (length << 10) | ((first & 0x1f) << 5) | (last & 0x1f);
const LONGEST_FIELD = 31;
const FIELD_NAME_BYTES = FIELD_NAMES.map((name) => Buffer.from(name, 'latin1'));
const FIELD_BY_KEY: Int8Array = (() => {
  const table = new Int8Array(fieldKey(LONGEST_FIELD + 1, 0, 0)).fill(-1);
  FIELD_NAME_BYTES.forEach((name, index) => {
    const key = fieldKey(name.length, name[0]!, name[name.length - 1]!);
    if (name.length > LONGEST_FIELD || table[key] !== -1) throw new Error(`field name key clash: ${name}`);
    table[key] = index;
  });
  return table;
})();

/** The index in FIELD_NAMES of the field name in bytes `from..to` (a token, any case), or -1. */
export function knownField(buf: Buffer, from: number, to: number): number {
  const length = to - from;
  if (length > LONGEST_FIELD) return -1;
  const index = FIELD_BY_KEY[fieldKey(length, buf[from]!, buf[to - 1]!)]!;
  if (index < 0) return -1;
  const name = FIELD_NAME_BYTES[index]!;
  for (let k = 0; k < length; k++) if (LOWER[buf[from + k]!] !== name[k]) return -1;
  return index;
}

export const CONTENT_LENGTH_INVALID = -1;
export const CONTENT_LENGTH_TOO_LARGE = -2;

/** Content-Length in bytes `from..to` (1*DIGIT, OWS already trimmed), or one of the two faults. */
export function parseContentLength(buf: Buffer, from: number, to: number): number {
  if (from === to) return CONTENT_LENGTH_INVALID;
  let length = 0;
  for (let i = from; i < to; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return CONTENT_LENGTH_INVALID;
    if (length > (Number.MAX_SAFE_INTEGER - digit) / 10) {
      // Still refuse a later non-digit as malformed rather than large.
      for (let k = i + 1; k < to; k++) if ((CHAR[buf[k]!]! & DIGIT) === 0) return CONTENT_LENGTH_INVALID;
      return CONTENT_LENGTH_TOO_LARGE;
    }
    length = length * 10 + digit;
  }
  return length;
}

export const CONNECTION_CLOSE = 1;
export const CONNECTION_KEEP_ALIVE = 2;
export const CONNECTION_UPGRADE = 4;

/** The Connection options among close, keep-alive and upgrade that bytes `from..to` name. */
export function connectionOptions(buf: Buffer, from: number, to: number): number {
  let options = 0;
  let i = from;
  while (i <= to) {
    let end = i;
    while (end < to && buf[end] !== COMMA) end++;
    let a = i;
    let b = end;
    while (a < b && (buf[a] === SP || buf[a] === HTAB)) a++;
    while (b > a && (buf[b - 1] === SP || buf[b - 1] === HTAB)) b--;
    if (bytesEqualIgnoreCase(buf, a, b, 'close')) options |= CONNECTION_CLOSE;
    else if (bytesEqualIgnoreCase(buf, a, b, 'keep-alive')) options |= CONNECTION_KEEP_ALIVE;
    else if (bytesEqualIgnoreCase(buf, a, b, 'upgrade')) options |= CONNECTION_UPGRADE;
    i = end + 1;
  }
  return options;
}

/**
 * The transfer codings that Transfer-Encoding values list, in order, lower-cased; undefined
 * when an element is empty or not a bare token (transfer parameters are not accepted).
 */
export function transferCodings(values: readonly string[]): string[] | undefined {
  const codings: string[] = [];
  for (const value of values) {
    for (const element of value.split(',')) {
      let a = 0;
      let b = element.length;
      while (a < b && isOws(element.charCodeAt(a))) a++;
      while (b > a && isOws(element.charCodeAt(b - 1))) b--;
      if (a === b) return undefined;
      for (let k = a; k < b; k++) {
        const c = element.charCodeAt(k);
        if (c > 0x7f || (CHAR[c]! & TCHAR) === 0) return undefined;
      }
      codings.push(element.slice(a, b).toLowerCase());
    }
  }
  return codings;
}

const isOws = (c: number): boolean => c === SP || c === HTAB;

/**
 * Whether bytes `from..to` are `uri-host [":" port]` (RFC 9110 §7.2): a non-empty reg-name or
 * IPv4 address, or a bracketed IP literal, then optionally a colon and 1 to 5 digits.
 * `requirePort` demands the port (authority-form of CONNECT).
 */
export function isHostAndPort(buf: Buffer, from: number, to: number, requirePort: boolean): boolean {
  let i = from;
  if (i < to && buf[i] === 0x5b /* [ */) {
    i++;
    const inner = i;
    while (i < to && ((CHAR[buf[i]!]! & REG_NAME) !== 0 || buf[i] === COLON)) {
      if (buf[i] === 0x25 /* % */ && !isPercentEncoded(buf, i, to)) return false;
      i++;
    }
    if (i === inner || i >= to || buf[i] !== 0x5d /* ] */) return false;
    i++;
  } else {
    const host = i;
    while (i < to && (CHAR[buf[i]!]! & REG_NAME) !== 0) {
      if (buf[i] === 0x25 /* % */ && !isPercentEncoded(buf, i, to)) return false;
      i++;
    }
    if (i === host) return false;
  }
  if (i === to) return !requirePort;
  if (buf[i] !== COLON) return false;
  const port = ++i;
  while (i < to && (CHAR[buf[i]!]! & DIGIT) !== 0) i++;
  return i === to && i > port && i - port <= 5;
}

function isPercentEncoded(buf: Buffer, i: number, to: number): boolean {
  return i + 2 < to && (CHAR[buf[i + 1]!]! & HEXDIG) !== 0 && (CHAR[buf[i + 2]!]! & HEXDIG) !== 0;
}

const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/**
 * Whether bytes `from..to` (already known to be visible ASCII without `#`) are a request-target
 * in the form `method` allows (RFC 9112 §3.2): authority-form for CONNECT only; `*` for
 * OPTIONS only; otherwise origin-form (`/...`) or absolute-form (`scheme://host[:port][/...|?...]`,
 * no userinfo).
 */
export function isTargetForm(buf: Buffer, from: number, to: number, method: string): boolean {
  if (method === 'CONNECT') return isHostAndPort(buf, from, to, true);
  const first = buf[from]!;
  if (first === 0x2f /* / */) return true;
  if (first === 0x2a /* * */) return to - from === 1 && method === 'OPTIONS';
  if (!isAlpha(first)) return false;
  // The scheme is letters only: RFC 3986 also allows digits, `+`, `-` and `.`, Node's parser does not.
  let i = from + 1;
  while (i < to && isAlpha(buf[i]!)) i++;
  if (to - i < 3 || buf[i] !== COLON || buf[i + 1] !== 0x2f || buf[i + 2] !== 0x2f) return false;
  i += 3;
  const authority = i;
  while (i < to && buf[i] !== 0x2f && buf[i] !== 0x3f /* ? */) i++;
  return isHostAndPort(buf, authority, i, false);
}
