/**
 * Request-path normalization, applied by the sidecar (and later the ingress gateway) before
 * routing and authorization; the app receives the normalized target. Its job is that the
 * path a policy is matched against is the path every server behind us will act on, so the
 * classic bypasses of a DENY on `/admin` (`/admin;x`, `/x/..%2fadmin`, `/%2561dmin`,
 * `/admin.`, ...) either become `/admin...` or are refused with 400.
 *
 * The rules, in the order they apply (defaults in {@link DEFAULT_PATH_NORMALIZATION}):
 *
 * 1. **Origin form only.** The target must start with `/`; `*`, absolute form
 *    (`http://x/`) and authority form are refused: they are the caller's business.
 * 2. **Fragment dropped.** `#` and everything after it, whether it starts in the path or
 *    in the query. Its characters are still checked by rule 3 (they were on the request line).
 * 3. **Characters refused** (400):
 *    - a raw NUL, control character (0x00-0x1F, 0x7F) or space anywhere in the target;
 *    - in the path, a raw character above 0x7E: HTTP request targets are ASCII, and a raw
 *      byte has no single reading (Node reads the request line as Latin-1, most apps as
 *      UTF-8);
 *    - in the path (the query's escapes are not read, see rule 7):
 *      - an escape that decodes to NUL, to a C0 or C1 control character (0x00-0x1F, 0x7F,
 *        U+0080-U+009F) or to whitespace (`%20`, and the Unicode spaces such as U+00A0,
 *        U+2000-U+200A, U+3000, U+FEFF): many servers trim segments, which turns
 *        `/admin%20` into `/admin`. See `encodedWhitespace` to let whitespace through
 *        between other characters of a segment;
 *      - a malformed escape (`%`, `%4`, `%zz`);
 *      - escapes that are not well-formed UTF-8 (RFC 3629: overlong forms such as
 *        `%C0%AF`, lone continuation bytes, truncated sequences, surrogates, code points
 *        above U+10FFFF);
 *      - double encoding: a `%25` whose next characters (after this pass) are two hex
 *        digits or `u` and four hex digits, since a server that decodes twice reads
 *        `%2561` as `a` (and IIS reads `%u0061` as `a`).
 * 4. **Escapes canonical.** Escapes of unreserved characters (ALPHA / DIGIT / `-._~`) are
 *    decoded, so `%2e%2e` is `..` and `%61dmin` is `admin`; every other escape stays
 *    encoded with upper-case hex.
 * 5. **Separators and segments**, in this order: `%2F`/`%5C` per `escapedSlashes`, a raw
 *    `\` per `backslash`, `;` per `semicolons` (which also decides `%3B`), then repeated
 *    slashes merged (`mergeSlashes`), then dot segments resolved as RFC 3986 section 5.2.4
 *    remove_dot_segments: `..` never climbs above the root, and a trailing `.` or `..`
 *    leaves a trailing `/`.
 * 6. **Names that another server would read differently are refused:**
 *    - a segment ending with `.` that is not `.` or `..` (`/admin.`, `/admin./x`, `/...`):
 *      Windows and some Java containers strip trailing dots (see `trailingDots`);
 *    - with `escapedSlashes: 'keep'` or `semicolons: 'keep'`, a segment whose part between
 *      `%2F`/`%5C`, or before its first `;`, is `.` or `..` (`..%2Fadmin`, `..;x`): a server
 *      that decodes `%2F` or strips path parameters would resolve it as a dot segment.
 *    These look at the whole segment and at each such part of it: what those servers see.
 * 7. **Query untouched.** Everything from the first `?` to the fragment is passed through
 *    byte for byte (escapes in it are not interpreted, so `%00` there is the app's
 *    business); only rule 3's raw characters refuse it.
 * 8. **Fast path.** A target whose path has no `%`, `;`, `\`, `#`, `//`, no `.` ending a
 *    segment, and no character outside 0x21-0x7E, and whose query has no `#`, control
 *    character or space, is already normal: it comes back as is, after one pass over it.
 *
 * The output is a fixed point: normalizing it again changes nothing. Never throws.
 */

/** How each kind of ambiguous input is handled; every field defaults to the strictest choice. */
export interface PathNormalizationOptions {
  /**
   * `%2F` / `%2f` / `%5C` / `%5c` in the path. `'reject'` (400, the default); `'decode'`
   * (becomes `/`, a separator, before dot segments are resolved and slashes merged, so
   * `/x/..%2fadmin` is `/admin`); `'keep'` (left encoded, upper-cased, as an opaque
   * character inside a segment; the app must then not decode it before authorizing).
   */
  readonly escapedSlashes?: 'reject' | 'decode' | 'keep';
  /** A raw `\` in the path: `'reject'` (400, the default) or `'slash'` (treated as `/`). */
  readonly backslash?: 'reject' | 'slash';
  /**
   * Path parameters (`;` in a segment, as in `/a;jsessionid=1/b` or `..;`). `'reject'` (400,
   * the default); `'strip'` (each segment's `;...` is removed before dot segments are
   * resolved, so `..;x` is `..`); with both, `%3B` is refused too, since a server that
   * decodes before it strips would cut `/admin%3Bx` to `/admin`. `'keep'` (`;` and `%3B` are
   * ordinary characters, for apps that give `;` no meaning: a segment whose part before `;`
   * is `.` or `..` is still refused, see rule 6).
   */
  readonly semicolons?: 'reject' | 'strip' | 'keep';
  /** Merge repeated slashes, `/a//b` to `/a/b` (default `true`). */
  readonly mergeSlashes?: boolean;
  /**
   * A segment ending with `.` that is not `.` or `..`: `'reject'` (400, the default), or
   * `'keep'` for apps that serve such names and whose servers do not strip trailing dots.
   */
  readonly trailingDots?: 'reject' | 'keep';
  /**
   * Percent-encoded whitespace (`%20`, `%C2%A0`, ...) in the path: `'reject'` (400, the
   * default), or `'inside'`: allowed between other characters of a segment (`/My%20File`)
   * but still refused at either end of a segment, or of its part before `;` or between
   * `%2F`s, where a trimming server would drop it.
   */
  readonly encodedWhitespace?: 'reject' | 'inside';
}

/** The strictest setting of every option. */
export const DEFAULT_PATH_NORMALIZATION: Readonly<Required<PathNormalizationOptions>> = Object.freeze({
  escapedSlashes: 'reject',
  backslash: 'reject',
  semicolons: 'reject',
  mergeSlashes: true,
  trailingDots: 'reject',
  encodedWhitespace: 'reject',
});

/** Why a target was refused; stable, for metrics and access logs. */
export type PathRefusalCode =
  /** Not origin form: empty, `*`, `http://...`, `host:port`. */
  | 'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM'
  /** A raw NUL anywhere, or `%00` in the path. */
  | 'CAUSEWAY_HTTP_PATH_NUL'
  /** A raw control character anywhere, or an escaped one in the path. */
  | 'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER'
  /** A raw space anywhere in the target. */
  | 'CAUSEWAY_HTTP_PATH_SPACE'
  /** A raw character above 0x7E in the path. */
  | 'CAUSEWAY_HTTP_PATH_NON_ASCII'
  /** Escaped whitespace in the path (anywhere, or at a segment's end with `'inside'`). */
  | 'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE'
  /** `%` not followed by two hex digits. */
  | 'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE'
  /** Escapes that are not well-formed UTF-8. */
  | 'CAUSEWAY_HTTP_PATH_INVALID_UTF8'
  /** `%25` followed by what would be an escape once decoded. */
  | 'CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING'
  /** `%2F` or `%5C` with `escapedSlashes: 'reject'`. */
  | 'CAUSEWAY_HTTP_PATH_ESCAPED_SLASH'
  /** A raw `\` with `backslash: 'reject'`. */
  | 'CAUSEWAY_HTTP_PATH_BACKSLASH'
  /** `;` with `semicolons: 'reject'`, or `%3B` unless `semicolons: 'keep'`. */
  | 'CAUSEWAY_HTTP_PATH_SEMICOLON'
  /** A segment ending with `.` with `trailingDots: 'reject'`. */
  | 'CAUSEWAY_HTTP_PATH_TRAILING_DOT'
  /** `.` or `..` hidden inside a segment by a kept `%2F` or `;`. */
  | 'CAUSEWAY_HTTP_PATH_AMBIGUOUS_DOT_SEGMENT';

export type NormalizedPath =
  | {
      readonly ok: true;
      /** The normalized path: starts with `/`, no fragment, no query. */
      readonly path: string;
      /** `''`, or the query from its `?`, unchanged. */
      readonly query: string;
      /** `path + query`: what routing, authorization and the app see. */
      readonly target: string;
    }
  | {
      readonly ok: false;
      readonly status: 400;
      readonly code: PathRefusalCode;
      /** For logs: names the offending part (quoted, non-printable characters escaped). */
      readonly reason: string;
    };

type Refusal = Extract<NormalizedPath, { ok: false }>;
type Settings = Readonly<Required<PathNormalizationOptions>>;

const SPACE = 0x20;
const HASH = 0x23;
const PERCENT = 0x25;
const DOT = 0x2e;
const SLASH = 0x2f;
const SEMICOLON = 0x3b;
const QUESTION = 0x3f;
const BACKSLASH = 0x5c;
const DEL = 0x7f;
const HEX_DIGITS = '0123456789ABCDEF';
/** Longest excerpt of the target quoted in a reason. */
const REASON_EXCERPT = 64;

/** ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 section 2.3). */
const UNRESERVED = new Uint8Array(128);
for (let code = 0; code < 128; code++) {
  const char = String.fromCharCode(code);
  UNRESERVED[code] = /[A-Za-z0-9._~-]/.test(char) ? 1 : 0;
}

/** Unicode White_Space that is not a control character, plus U+180E and U+FEFF, which some trims remove. */
const WHITESPACE_CODE_POINTS: readonly number[] = [
  0x20, 0xa0, 0x1680, 0x180e, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009,
  0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff,
];
const WHITESPACE = new Set(WHITESPACE_CODE_POINTS);
/** The same characters as they appear in a normalized segment. */
const WHITESPACE_ESCAPES: readonly string[] = WHITESPACE_CODE_POINTS.map((codePoint) =>
  Array.from(new TextEncoder().encode(String.fromCodePoint(codePoint)), escapeOf).join(''),
);
/** `%25` that a second decoding would turn into an escape (`%2561`) or an IIS `%u` escape. */
const DOUBLE_ENCODED = /%25(?:[0-9A-Fa-f]{2}|[Uu][0-9A-Fa-f]{4})/;
/** Where a server that decodes `%2F`/`%5C` splits a segment kept with them. */
const ESCAPED_SLASH = /%2F|%5C/;

/**
 * Normalizes an origin-form request target (`/path?query#fragment`) as the module
 * documentation describes. Pure and synchronous; never throws, whatever the target.
 */
export function normalizePath(target: string, options?: PathNormalizationOptions): NormalizedPath {
  if (typeof target !== 'string' || target.charCodeAt(0) !== SLASH) {
    return refuse(
      'CAUSEWAY_HTTP_PATH_NOT_ORIGIN_FORM',
      `request target ${typeof target === 'string' ? quote(target) : `of type ${typeof target}`} does not start with "/" (origin form)`,
    );
  }
  const length = target.length;
  let previous = SLASH;
  let index = 1;
  for (; index < length; index++) {
    const code = target.charCodeAt(index);
    if (code === QUESTION) break;
    if (
      code <= SPACE ||
      code >= DEL ||
      code === PERCENT ||
      code === SEMICOLON ||
      code === BACKSLASH ||
      code === HASH ||
      (code === SLASH && previous === SLASH)
    ) {
      return normalizeSlowly(target, settingsOf(options));
    }
    if (code === DOT) {
      // Dot segments and trailing dots all end with a dot that ends a segment; other dots
      // (`/app.min.js`, `/.well-known/x`) stay on this path.
      const next = target.charCodeAt(index + 1);
      if (next === SLASH || next === QUESTION || Number.isNaN(next)) {
        return normalizeSlowly(target, settingsOf(options));
      }
    }
    previous = code;
  }
  if (index === length) return { ok: true, path: target, query: '', target };
  for (let at = index + 1; at < length; at++) {
    const code = target.charCodeAt(at);
    if (code <= SPACE || code === DEL || code === HASH) return normalizeSlowly(target, settingsOf(options));
  }
  return { ok: true, path: target.slice(0, index), query: target.slice(index), target };
}

function normalizeSlowly(target: string, settings: Settings): NormalizedPath {
  const length = target.length;
  let queryAt = -1;
  let fragmentAt = -1;
  for (let index = 0; index < length; index++) {
    const code = target.charCodeAt(index);
    if (code <= SPACE || code === DEL) {
      const part = fragmentAt >= 0 ? 'fragment' : queryAt >= 0 ? 'query' : 'path';
      if (code === 0) return refuse('CAUSEWAY_HTTP_PATH_NUL', `raw NUL at offset ${index} (${part})`);
      if (code === SPACE) return refuse('CAUSEWAY_HTTP_PATH_SPACE', `raw space at offset ${index} (${part})`);
      return refuse(
        'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER',
        `raw control character ${codePointName(code)} at offset ${index} (${part})`,
      );
    }
    if (code === HASH && fragmentAt < 0) fragmentAt = index;
    else if (code === QUESTION && queryAt < 0 && fragmentAt < 0) queryAt = index;
  }
  const queryEnd = fragmentAt >= 0 ? fragmentAt : length;
  const pathEnd = queryAt >= 0 ? queryAt : queryEnd;
  const query = queryAt >= 0 ? target.slice(queryAt, queryEnd) : '';

  const segments = splitSegments(target, pathEnd, settings);
  if (!Array.isArray(segments)) return segments;
  const path = resolveSegments(segments, settings);
  if (typeof path !== 'string') return path;
  return { ok: true, path, query, target: path + query };
}

/**
 * Rules 3 to 5 up to the segment boundaries: checks every character and escape of the
 * path, decodes unreserved escapes, and splits on every separator the settings recognise.
 */
function splitSegments(target: string, pathEnd: number, settings: Settings): string[] | Refusal {
  const segments: string[] = [];
  let segment = '';
  let index = 1;
  while (index < pathEnd) {
    const code = target.charCodeAt(index);
    if (code === SLASH) {
      segments.push(segment);
      segment = '';
      index++;
      continue;
    }
    if (code === BACKSLASH) {
      if (settings.backslash !== 'slash') {
        return refuse('CAUSEWAY_HTTP_PATH_BACKSLASH', `raw backslash at offset ${index}`);
      }
      segments.push(segment);
      segment = '';
      index++;
      continue;
    }
    if (code === SEMICOLON && settings.semicolons === 'reject') {
      const next = target.indexOf('/', index);
      const name = target.slice(
        target.lastIndexOf('/', index) + 1,
        next >= 0 && next < pathEnd ? next : pathEnd,
      );
      return refuse(
        'CAUSEWAY_HTTP_PATH_SEMICOLON',
        `path parameter in segment ${quote(name)} at offset ${index}`,
      );
    }
    if (code > 0x7e) {
      return refuse(
        'CAUSEWAY_HTTP_PATH_NON_ASCII',
        `raw non-ASCII character ${codePointName(code)} at offset ${index}`,
      );
    }
    if (code !== PERCENT) {
      segment += target[index];
      index++;
      continue;
    }

    const byte = escapedByte(target, index, pathEnd);
    if (byte < 0) {
      return refuse(
        'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE',
        `malformed escape ${quote(target.slice(index, Math.min(index + 3, pathEnd)))} at offset ${index}`,
      );
    }
    if (byte >= 0x80) {
      const codePoint = utf8CodePoint(target, index, pathEnd, byte);
      if (codePoint === MALFORMED) {
        return refuse(
          'CAUSEWAY_HTTP_PATH_MALFORMED_ESCAPE',
          `malformed escape in the UTF-8 sequence at offset ${index}`,
        );
      }
      if (codePoint === INVALID) {
        return refuse(
          'CAUSEWAY_HTTP_PATH_INVALID_UTF8',
          `escapes at offset ${index} are not well-formed UTF-8: ${quote(target.slice(index, Math.min(index + 12, pathEnd)))}`,
        );
      }
      const text = target.slice(index, index + 3 * (codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4));
      if (codePoint <= 0x9f) {
        return refuse(
          'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER',
          `escaped control character ${codePointName(codePoint)} ${quote(text)} at offset ${index}`,
        );
      }
      if (WHITESPACE.has(codePoint) && settings.encodedWhitespace !== 'inside') {
        return refuse(
          'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE',
          `escaped whitespace ${codePointName(codePoint)} ${quote(text)} at offset ${index}`,
        );
      }
      segment += text.toUpperCase();
      index += text.length;
      continue;
    }
    const text = target.slice(index, index + 3);
    if (byte === 0) return refuse('CAUSEWAY_HTTP_PATH_NUL', `escaped NUL ${quote(text)} at offset ${index}`);
    if (byte < SPACE || byte === DEL) {
      return refuse(
        'CAUSEWAY_HTTP_PATH_CONTROL_CHARACTER',
        `escaped control character ${codePointName(byte)} ${quote(text)} at offset ${index}`,
      );
    }
    if (byte === SPACE && settings.encodedWhitespace !== 'inside') {
      return refuse(
        'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE',
        `escaped space ${quote(text)} at offset ${index}`,
      );
    }
    if (byte === SEMICOLON && settings.semicolons !== 'keep') {
      return refuse('CAUSEWAY_HTTP_PATH_SEMICOLON', `escaped semicolon ${quote(text)} at offset ${index}`);
    }
    const slash = byte === SLASH || byte === BACKSLASH;
    if (slash && settings.escapedSlashes === 'reject') {
      return refuse('CAUSEWAY_HTTP_PATH_ESCAPED_SLASH', `escaped slash ${quote(text)} at offset ${index}`);
    }
    index += 3;
    if (UNRESERVED[byte] === 1) {
      segment += String.fromCharCode(byte);
    } else if (slash && settings.escapedSlashes === 'decode') {
      segments.push(segment);
      segment = '';
    } else {
      segment += escapeOf(byte);
    }
  }
  segments.push(segment);
  return segments;
}

/**
 * Rules 5 and 6 over the segments after the leading `/`: strips path parameters, merges
 * slashes, resolves dot segments, and refuses names another server would read differently.
 * Segments that a later `..` removes are checked too: refusing them costs nothing legitimate.
 */
function resolveSegments(segments: readonly string[], settings: Settings): string | Refusal {
  const resolved: string[] = [];
  const last = segments.length - 1;
  for (let index = 0; index <= last; index++) {
    let segment = segments[index]!;
    if (settings.semicolons === 'strip') {
      const parameters = segment.indexOf(';');
      if (parameters >= 0) segment = segment.slice(0, parameters);
    }
    if (segment === '' && settings.mergeSlashes && index !== last) continue;
    if (segment === '.' || segment === '..') {
      if (segment === '..') resolved.pop();
      if (index === last) resolved.push('');
      continue;
    }
    const refusal = checkSegment(segment, settings);
    if (refusal !== undefined) return refusal;
    resolved.push(segment);
  }
  return '/' + resolved.join('/');
}

function checkSegment(segment: string, settings: Settings): Refusal | undefined {
  if (segment.includes('%25') && DOUBLE_ENCODED.test(segment)) {
    return refuse('CAUSEWAY_HTTP_PATH_DOUBLE_ENCODING', `segment ${quote(segment)} is encoded twice`);
  }
  const parts = settings.escapedSlashes === 'keep' ? segment.split(ESCAPED_SLASH) : [segment];
  for (const part of parts) {
    const parameters = settings.semicolons === 'keep' ? part.indexOf(';') : -1;
    const name = parameters >= 0 ? part.slice(0, parameters) : part;
    if (name === '.' || name === '..') {
      return refuse(
        'CAUSEWAY_HTTP_PATH_AMBIGUOUS_DOT_SEGMENT',
        `segment ${quote(segment)} hides the dot segment ${quote(name)}`,
      );
    }
    const refusal =
      checkEnds(part, segment, settings) ?? (name === part ? undefined : checkEnds(name, segment, settings));
    if (refusal !== undefined) return refusal;
  }
  return undefined;
}

/** Rule 6 and `encodedWhitespace: 'inside'`: what a server that trims `text` would cut off. */
function checkEnds(text: string, segment: string, settings: Settings): Refusal | undefined {
  if (settings.trailingDots !== 'keep' && text.charCodeAt(text.length - 1) === DOT) {
    return refuse('CAUSEWAY_HTTP_PATH_TRAILING_DOT', `segment ${quote(segment)} ends with a dot`);
  }
  if (settings.encodedWhitespace === 'inside' && text.includes('%')) {
    for (const escape of WHITESPACE_ESCAPES) {
      if (text.startsWith(escape) || text.endsWith(escape)) {
        return refuse(
          'CAUSEWAY_HTTP_PATH_ENCODED_WHITESPACE',
          `segment ${quote(segment)} starts or ends with escaped whitespace ${quote(escape)}`,
        );
      }
    }
  }
  return undefined;
}

function settingsOf(options: PathNormalizationOptions | undefined): Settings {
  if (options === undefined || options === null || typeof options !== 'object') {
    return DEFAULT_PATH_NORMALIZATION;
  }
  // Anything but a known value falls back to the strict default: a typo must not open a bypass.
  const { escapedSlashes, backslash, semicolons, mergeSlashes, trailingDots, encodedWhitespace } = options;
  return {
    escapedSlashes: escapedSlashes === 'decode' || escapedSlashes === 'keep' ? escapedSlashes : 'reject',
    backslash: backslash === 'slash' ? 'slash' : 'reject',
    semicolons: semicolons === 'strip' || semicolons === 'keep' ? semicolons : 'reject',
    mergeSlashes: mergeSlashes !== false,
    trailingDots: trailingDots === 'keep' ? 'keep' : 'reject',
    encodedWhitespace: encodedWhitespace === 'inside' ? 'inside' : 'reject',
  };
}

/** The byte of the escape at `at` (`%` + two hex digits before `end`), or -1. */
function escapedByte(text: string, at: number, end: number): number {
  if (at + 2 >= end) return -1;
  const high = hexValue(text.charCodeAt(at + 1));
  const low = hexValue(text.charCodeAt(at + 2));
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

const INVALID = -1;
const MALFORMED = -2;

/**
 * The code point of the UTF-8 sequence whose escaped lead byte (>= 0x80) is at `at`, or
 * INVALID unless it is well-formed per RFC 3629 table 3-7 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), or MALFORMED if a continuation escape is.
 */
function utf8CodePoint(text: string, at: number, end: number, lead: number): number {
  let continuations: number;
  let codePoint: number;
  // The second byte's range is narrower than 0x80-0xBF exactly where the table excludes
  // overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    continuations = 1;
    codePoint = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    continuations = 2;
    codePoint = lead & 0x0f;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    continuations = 3;
    codePoint = lead & 0x07;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else {
    return INVALID;
  }
  for (let count = 1; count <= continuations; count++) {
    const position = at + 3 * count;
    if (position >= end || text.charCodeAt(position) !== PERCENT) return INVALID;
    const byte = escapedByte(text, position, end);
    if (byte < 0) return MALFORMED;
    if (byte < low || byte > high) return INVALID;
    low = 0x80;
    high = 0xbf;
    codePoint = (codePoint << 6) | (byte & 0x3f);
  }
  return codePoint;
}

function escapeOf(byte: number): string {
  return '%' + HEX_DIGITS[byte >> 4]! + HEX_DIGITS[byte & 0x0f]!;
}

function refuse(code: PathRefusalCode, reason: string): Refusal {
  return { ok: false, status: 400, code, reason };
}

function codePointName(codePoint: number): string {
  return 'U+' + codePoint.toString(16).toUpperCase().padStart(4, '0');
}

/** `text` quoted for a log line: bounded, and nothing but printable ASCII. */
function quote(text: string): string {
  const excerpt = text.length > REASON_EXCERPT ? text.slice(0, REASON_EXCERPT) : text;
  const printable = excerpt.replace(
    /[^\x21-\x7e]|["\\]/g,
    (char) => '\\u' + char.charCodeAt(0).toString(16).padStart(4, '0'),
  );
  return '"' + printable + (excerpt === text ? '"' : '"...');
}
