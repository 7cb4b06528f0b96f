/**
 * The syntax of an HTTP/1.1 head (RFC 9112 §2-§5), checked by a state machine that can stop
 * after any byte and resume at the next call: every byte is looked at once, whatever pieces the
 * head arrives in, and the outcome (including which error) never depends on the split.
 */
import * as chars from './h1-chars.ts';
import type { H1ErrorCode } from './h1-errors.ts';
import * as fields from './h1-fields.ts';
import type { H1Limits } from './h1-limits.ts';

// Imports bound once to module constants: a loader that compiles modules to CommonJS (tsx on
// Node 20) turns every use of an import into a getter call, which per-byte loops cannot afford.
const { CHAR, COLON, CR, DIGIT, FIELD, HTAB, LF, SP, TARGET, TCHAR, UPPER } = chars;
const { knownField } = fields;

export const INCOMPLETE = -1;
export const FAILED = -2;

// Where the scan is. Request line, then status line, then field lines.
const LEADING = 0;
const LEADING_LF = 1;
const METHOD = 2;
const REQUEST_TARGET = 3;
const VERSION = 4;
const START_CR = 5;
const START_LF = 6;
const STATUS_VERSION = 7;
const STATUS_SP = 8;
const STATUS_CODE = 9;
const AFTER_CODE = 10;
const REASON = 11;
const LINE = 12;
const NAME = 13;
const OWS = 14;
const VALUE = 15;
const VALUE_LF = 16;
const END_LF = 17;

/**
 * Per field line in `HeadScan.spans`: name start and end, value start and end (without OWS),
 * the index of the name in FIELD_NAMES (or OTHER_NAME*), and where the line's CR is.
 */
export const SPAN = 6;
/** A name not in FIELD_NAMES, without (-1) or with (-2) upper-case letters. */
export const OTHER_NAME = -1;
export const OTHER_NAME_UPPER = -2;

const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f];

/**
 * Progress through one head: pass the same HeadScan to every call while a head arrives in
 * pieces (keeping the bytes from `start` unchanged and only appending), and each call reads only
 * the bytes that are new, so a peer sending one byte at a time costs linear time. It resets
 * itself when a call returns a head or an error, so one HeadScan serves a whole connection (one
 * per direction). Without one, each call reads the head from `start` again.
 */
export class HeadScan {
  // Offsets are from `start`, so the caller may move the bytes to a larger buffer between calls.
  /** @internal */ state = LEADING;
  /** @internal Offset of the next byte to read. */ pos = 0;
  /** @internal Bytes of the version or status code read so far. */ part = 0;
  /** @internal */ minor = 1;
  /** @internal */ status = 0;
  /** @internal Method (request) or nothing (response). */ methodStart = 0;
  /** @internal */ methodEnd = 0;
  /** @internal Request-target (request) or reason phrase (response). */ targetStart = 0;
  /** @internal */ targetEnd = 0;
  /** @internal */ nameStart = 0;
  /** @internal */ nameEnd = 0;
  /** @internal */ nameUpper = false;
  /** @internal */ valueStart = 0;
  /** @internal Field lines read whole. */ fields = 0;
  /** @internal SPAN numbers per field line. */ spans = new Int32Array(SPAN * 32);
  /** @internal Why the scan failed. */ failure: H1ErrorCode = 'CAUSEWAY_H1_BARE_LF';

  /** Forgets the head under way (done automatically when a head or an error is returned). */
  reset(): void {
    this.state = LEADING;
    this.pos = 0;
    this.part = 0;
    this.minor = 1;
    this.status = 0;
    this.fields = 0;
    this.nameUpper = false;
  }
}

function fail(scan: HeadScan, code: H1ErrorCode): number {
  scan.failure = code;
  return FAILED;
}

/** The error for an unexpected byte `c`: a line feed where none may be is always a bare LF. */
function unexpected(scan: HeadScan, c: number, code: H1ErrorCode): number {
  return fail(scan, c === LF ? 'CAUSEWAY_H1_BARE_LF' : code);
}

/**
 * Reads the head at `start` up to `lim` from where `scan` stopped. Returns the offset just past
 * the empty line, INCOMPLETE (`scan` holds the progress) or FAILED (`scan.failure` says why).
 */
export function scanHead(
  buf: Buffer,
  start: number,
  lim: number,
  limits: H1Limits,
  scan: HeadScan,
  response: boolean,
): number {
  let state = scan.pos === 0 && scan.state === LEADING && response ? STATUS_VERSION : scan.state;
  let i = start + scan.pos;

  while (i < lim && state < LINE) {
    switch (state) {
      case LEADING: {
        // RFC 9112 §2.2: a server ignores at least one empty line before the request line; one is.
        const c = buf[i]!;
        if (c === CR) {
          state = LEADING_LF;
          i++;
        } else {
          scan.methodStart = i - start;
          state = METHOD;
        }
        break;
      }
      case LEADING_LF:
        if (buf[i] !== LF) return fail(scan, 'CAUSEWAY_H1_BARE_CR');
        i++;
        scan.methodStart = i - start;
        state = METHOD;
        break;
      case METHOD: {
        while (i < lim && (CHAR[buf[i]!]! & TCHAR) !== 0) i++;
        if (i >= lim) break;
        const c = buf[i]!;
        const empty = i - start === scan.methodStart;
        if (c !== SP || empty) {
          if (empty && c === CR && scan.methodStart > 0) return fail(scan, 'CAUSEWAY_H1_EMPTY_LINES');
          return unexpected(scan, c, 'CAUSEWAY_H1_METHOD_INVALID');
        }
        scan.methodEnd = i - start;
        scan.targetStart = ++i - start;
        state = REQUEST_TARGET;
        break;
      }
      case REQUEST_TARGET: {
        while (i < lim && (CHAR[buf[i]!]! & TARGET) !== 0) i++;
        if (i >= lim) break;
        const c = buf[i]!;
        const empty = i - start === scan.targetStart;
        if (c !== SP || empty) {
          const broken = empty || c === SP || c === CR;
          return unexpected(
            scan,
            c,
            broken ? 'CAUSEWAY_H1_REQUEST_LINE_INVALID' : 'CAUSEWAY_H1_TARGET_INVALID',
          );
        }
        scan.targetEnd = i++ - start;
        scan.part = 0;
        state = VERSION;
        break;
      }
      case VERSION:
      case STATUS_VERSION: {
        // `HTTP/` DIGIT `.` DIGIT; a well-formed version other than 1.0 or 1.1 is 505.
        const k = scan.part;
        const c = buf[i]!;
        const fits = k < 5 ? c === HTTP_SLASH[k] : k === 6 ? c === 0x2e : (CHAR[c]! & DIGIT) !== 0;
        if (!fits) return unexpected(scan, c, 'CAUSEWAY_H1_VERSION_INVALID');
        i++;
        if (k === 7) {
          const major = buf[i - 3]! - 0x30;
          const minor = c - 0x30;
          scan.minor = major === 1 && minor <= 1 ? minor : -1;
          state = state === VERSION ? START_CR : STATUS_SP;
        } else scan.part = k + 1;
        break;
      }
      case START_CR: {
        const c = buf[i]!;
        if (c !== CR) return unexpected(scan, c, 'CAUSEWAY_H1_REQUEST_LINE_INVALID');
        i++;
        state = START_LF;
        break;
      }
      case START_LF:
        if (buf[i] !== LF) return fail(scan, 'CAUSEWAY_H1_BARE_CR');
        if (scan.minor < 0) return fail(scan, 'CAUSEWAY_H1_VERSION_UNSUPPORTED');
        i++;
        state = LINE;
        break;
      case STATUS_SP: {
        const c = buf[i]!;
        if (c !== SP) return unexpected(scan, c, 'CAUSEWAY_H1_STATUS_LINE_INVALID');
        i++;
        scan.part = 0;
        scan.status = 0;
        state = STATUS_CODE;
        break;
      }
      case STATUS_CODE: {
        const c = buf[i]!;
        if ((CHAR[c]! & DIGIT) === 0) return unexpected(scan, c, 'CAUSEWAY_H1_STATUS_LINE_INVALID');
        i++;
        scan.status = scan.status * 10 + c - 0x30;
        if (++scan.part === 3) {
          if (scan.status < 100 || scan.status > 599) return fail(scan, 'CAUSEWAY_H1_STATUS_LINE_INVALID');
          state = AFTER_CODE;
        }
        break;
      }
      case AFTER_CODE: {
        // `SP reason-phrase`; a line ending right after the code is accepted (the reason carries
        // no framing, and servers that omit it exist).
        const c = buf[i]!;
        if (c === SP) {
          scan.targetStart = ++i - start;
          state = REASON;
        } else if (c === CR) {
          scan.targetStart = scan.targetEnd = i++ - start;
          state = START_LF;
        } else return unexpected(scan, c, 'CAUSEWAY_H1_STATUS_LINE_INVALID');
        break;
      }
      case REASON: {
        while (i < lim && (CHAR[buf[i]!]! & FIELD) !== 0) i++;
        if (i >= lim) break;
        const c = buf[i]!;
        if (c !== CR) return unexpected(scan, c, 'CAUSEWAY_H1_STATUS_LINE_INVALID');
        scan.targetEnd = i++ - start;
        state = START_LF;
        break;
      }
    }
  }
  if (state < LINE) {
    scan.state = state;
    scan.pos = i - start;
    return INCOMPLETE;
  }
  return scanFields(buf, start, i, lim, limits, scan, state);
}

/**
 * The field lines from `i` through the empty line. The steps of a line run in order without a
 * dispatch between them (a head that arrives whole goes straight through); a step that runs
 * out of bytes records where it is and returns INCOMPLETE.
 */
function scanFields(
  buf: Buffer,
  start: number,
  i: number,
  lim: number,
  limits: H1Limits,
  scan: HeadScan,
  state: number,
): number {
  let nameStart = start + scan.nameStart;
  let nameEnd = start + scan.nameEnd;
  let valueStart = start + scan.valueStart;
  let nameUpper = scan.nameUpper;
  let c = 0;
  for (;;) {
    if (state === LINE) {
      if (i >= lim) break;
      c = buf[i]!;
      if ((CHAR[c]! & TCHAR) !== 0) {
        nameStart = i;
        nameUpper = false;
        state = NAME;
      } else if (c === CR) {
        i++;
        state = END_LF;
      } else if (c === SP || c === HTAB) return fail(scan, 'CAUSEWAY_H1_OBS_FOLD');
      else return unexpected(scan, c, 'CAUSEWAY_H1_FIELD_NAME_INVALID');
    }
    if (state === NAME) {
      let seen = 0;
      let flags = 0;
      while (i < lim && ((flags = CHAR[buf[i]!]!) & TCHAR) !== 0) {
        seen |= flags;
        i++;
      }
      if ((seen & UPPER) !== 0) nameUpper = true;
      if (i >= lim) break;
      c = buf[i]!;
      if (c !== COLON) {
        if (c === SP || c === HTAB) return fail(scan, 'CAUSEWAY_H1_SPACE_BEFORE_COLON');
        return unexpected(scan, c, 'CAUSEWAY_H1_FIELD_NAME_INVALID');
      }
      nameEnd = i++;
      state = OWS;
    }
    if (state === OWS) {
      while (i < lim && ((c = buf[i]!) === SP || c === HTAB)) i++;
      if (i >= lim) break;
      valueStart = i;
      state = VALUE;
    }
    if (state === VALUE) {
      while (i < lim && (CHAR[buf[i]!]! & FIELD) !== 0) i++;
      if (i >= lim) break;
      c = buf[i]!;
      if (c !== CR) return unexpected(scan, c, 'CAUSEWAY_H1_FIELD_VALUE_INVALID');
      i++;
      state = VALUE_LF;
    }
    if (state === VALUE_LF) {
      if (i >= lim) break;
      if (buf[i] !== LF) return fail(scan, 'CAUSEWAY_H1_BARE_CR');
      if (scan.fields >= limits.maxHeaders) return fail(scan, 'CAUSEWAY_H1_TOO_MANY_FIELDS');
      let valueEnd = i - 1;
      while (valueEnd > valueStart && ((c = buf[valueEnd - 1]!) === SP || c === HTAB)) valueEnd--;
      const known = knownField(buf, nameStart, nameEnd);
      let spans = scan.spans;
      const at = SPAN * scan.fields++;
      if (at + SPAN > spans.length) {
        spans = new Int32Array(spans.length * 2);
        spans.set(scan.spans);
        scan.spans = spans;
      }
      spans[at] = nameStart - start;
      spans[at + 1] = nameEnd - start;
      spans[at + 2] = valueStart - start;
      spans[at + 3] = valueEnd - start;
      spans[at + 4] = known >= 0 ? known : nameUpper ? OTHER_NAME_UPPER : OTHER_NAME;
      spans[at + 5] = i - 1 - start;
      i++;
      state = LINE;
      continue;
    }
    // END_LF
    if (i >= lim) break;
    if (buf[i] !== LF) return fail(scan, 'CAUSEWAY_H1_BARE_CR');
    return i + 1;
  }
  scan.state = state;
  scan.pos = i - start;
  scan.nameStart = nameStart - start;
  scan.nameEnd = nameEnd - start;
  scan.valueStart = valueStart - start;
  scan.nameUpper = nameUpper;
  return INCOMPLETE;
}
