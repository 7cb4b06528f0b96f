/**
 * Finds where a message body ends (RFC 9112 §6-§7) while its bytes pass through unchanged:
 * Content-Length counts down, chunked coding is walked by a byte-at-a-time state machine that
 * resumes at any split of the input.
 */
import * as chars from './h1-chars.ts';
import { REQUEST_ERRORS, RESPONSE_ERRORS, type H1Error, type H1ErrorCode } from './h1-errors.ts';
import type { BodyFraming } from './h1-head.ts';
import { DEFAULT_H1_LIMITS, type H1Limits } from './h1-limits.ts';

// Imports bound once to module constants: a loader that compiles modules to CommonJS (tsx on
// Node 20) turns every use of an import into a getter call, which per-byte loops cannot afford.
const { CHAR, COLON, CR, FIELD, HTAB, LF, QDTEXT, SEMICOLON, SP, TCHAR } = chars;

export type BodyProgress =
  /** `consumed` bytes from `start` belong to this body (forward them); `done` once its last byte is among them. */
  | { readonly consumed: number; readonly done: boolean }
  /** The body is malformed: answer `error.status` (or drop the connection) and stop reading it. */
  | { readonly error: H1Error };

// Where the chunked walk is: in a chunk-size line, in chunk data, or in the trailer section.
const SIZE_FIRST = 0;
const SIZE = 1;
const EXT_NAME_FIRST = 2;
const EXT_NAME = 3;
const EXT_VALUE_FIRST = 4;
const EXT_TOKEN = 5;
const EXT_QUOTED = 6;
const EXT_QUOTED_PAIR = 7;
const EXT_AFTER_QUOTED = 8;
const SIZE_LF = 9;
const DATA = 10;
const DATA_CR = 11;
const DATA_LF = 12;
const TRAILER_START = 13;
const TRAILER_NAME = 14;
const TRAILER_VALUE = 15;
const TRAILER_LF = 16;
const FINAL_LF = 17;
const DONE = 18;
const FAILED = 19;

const NONE = 0;
const LENGTH = 1;
const CHUNKED = 2;
const CLOSE = 3;

const HEX_VALUE = Int8Array.from({ length: 256 }, (_, c) => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
});

/** Past this a chunk size would no longer be exact in a double: 16 * size + 15 must stay safe. */
const MAX_SIZE_BEFORE_DIGIT = Math.floor(Number.MAX_SAFE_INTEGER / 16);

const DONE_NOW: BodyProgress = Object.freeze({ consumed: 0, done: true });

function progressFailures(errors: Readonly<Record<H1ErrorCode, H1Error>>) {
  const out = {} as Record<H1ErrorCode, BodyProgress>;
  for (const code of Object.keys(errors) as H1ErrorCode[]) out[code] = Object.freeze({ error: errors[code] });
  return out;
}
const REQUEST_FAILURES = progressFailures(REQUEST_ERRORS);
const RESPONSE_FAILURES = progressFailures(RESPONSE_ERRORS);

/**
 * Tracks one message body. Each feed() says how many of the given bytes belong to the body and
 * whether it ended; bytes after the end belong to the next message. Never throws; after an
 * error every later call returns the same error.
 */
export class BodyTracker {
  private readonly mode: number;
  private readonly limits: H1Limits;
  private readonly failures: Readonly<Record<H1ErrorCode, BodyProgress>>;
  /** Bytes left in the body (Content-Length) or in the current chunk's data. */
  private remaining: number;
  private state = SIZE_FIRST;
  /** The chunk size being read. */
  private size = 0;
  /** Bytes of the current chunk-size line so far. */
  private lineBytes = 0;
  private trailerBytes = 0;
  private trailerFields = 0;
  private failed: BodyProgress | undefined;

  /**
   * `message` says whose body it is: errors in a response body carry status 502. `content`,
   * when given, receives the body's content as it is found: the chunks' data without their
   * framing (sizes, extensions, trailers), the whole of any other body; the ranges are views
   * of the buffers fed.
   */
  constructor(
    framing: BodyFraming,
    limits: H1Limits = DEFAULT_H1_LIMITS,
    message: 'request' | 'response' = 'request',
    private readonly content?: (data: Buffer) => void,
  ) {
    this.limits = limits;
    this.failures = message === 'response' ? RESPONSE_FAILURES : REQUEST_FAILURES;
    this.remaining = framing.type === 'length' ? framing.length : 0;
    this.mode =
      framing.type === 'length'
        ? framing.length > 0
          ? LENGTH
          : NONE
        : framing.type === 'chunked'
          ? CHUNKED
          : framing.type === 'close'
            ? CLOSE
            : NONE;
    if (this.mode === NONE) this.state = DONE;
  }

  /** Feeds `buf[start..end)`: how much of it is body, and whether the body ended within it. */
  feed(buf: Buffer, start: number, end: number = buf.length): BodyProgress {
    if (this.failed !== undefined) return this.failed;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > buf.length)
      return this.failures.CAUSEWAY_H1_INVALID_OFFSET;
    switch (this.mode) {
      case LENGTH: {
        const consumed = Math.min(this.remaining, end - start);
        this.remaining -= consumed;
        if (this.content && consumed > 0) this.content(buf.subarray(start, start + consumed));
        if (this.remaining === 0) this.state = DONE;
        return { consumed, done: this.remaining === 0 };
      }
      case CHUNKED:
        return this.state === DONE ? DONE_NOW : this.chunked(buf, start, end);
      case CLOSE:
        if (this.content && end > start) this.content(buf.subarray(start, end));
        return { consumed: end - start, done: false };
      default:
        return DONE_NOW;
    }
  }

  /**
   * The connection delivered no more bytes: a close-delimited body ends here; any other body
   * that has not ended is truncated (an error).
   */
  finish(): BodyProgress {
    if (this.failed !== undefined) return this.failed;
    if (this.mode === CLOSE || this.state === DONE) {
      this.state = DONE;
      return DONE_NOW;
    }
    return this.fail('CAUSEWAY_H1_BODY_TRUNCATED');
  }

  private fail(code: H1ErrorCode): BodyProgress {
    this.state = FAILED;
    return (this.failed = this.failures[code]);
  }

  /**
   * Every refusal here keeps all hops agreeing on where a chunked body ends:
   * 1. A chunk size past 2^53 - 1 (another parser may wrap it at 2^64, or read it as less).
   * 2. A bare CR or LF, or whitespace in a chunk-size line (Node refuses those): a hop that
   *    tolerates it finds chunk boundaries where the next hop does not.
   * 3. Chunk data not followed by CRLF: the sizes and the data disagree.
   * 4. Trailer fields under the same rules as head fields (no folding, no controls).
   */
  private chunked(buf: Buffer, start: number, end: number): BodyProgress {
    let state = this.state;
    let i = start;
    while (i < end) {
      if (state === DATA) {
        const take = Math.min(this.remaining, end - i);
        if (this.content && take > 0) this.content(buf.subarray(i, i + take));
        i += take;
        this.remaining -= take;
        if (this.remaining > 0) break;
        state = DATA_CR;
        continue;
      }
      const c = buf[i++]!;
      if (state <= SIZE_LF && ++this.lineBytes > this.limits.maxChunkLineBytes)
        return this.fail('CAUSEWAY_H1_CHUNK_LINE_TOO_LONG');
      if (state >= TRAILER_START && ++this.trailerBytes > this.limits.maxTrailerBytes)
        return this.fail('CAUSEWAY_H1_TRAILER_TOO_LARGE');
      switch (state) {
        case SIZE_FIRST:
        case SIZE: {
          const digit = HEX_VALUE[c]!;
          if (digit >= 0) {
            if (this.size > MAX_SIZE_BEFORE_DIGIT) return this.fail('CAUSEWAY_H1_CHUNK_SIZE_TOO_LARGE');
            this.size = this.size * 16 + digit;
            state = SIZE;
          } else if (state === SIZE && c === SEMICOLON) state = EXT_NAME_FIRST;
          else if (state === SIZE && c === CR) state = SIZE_LF;
          else return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_CHUNK_SIZE_INVALID');
          break;
        }
        case EXT_NAME_FIRST:
        case EXT_NAME:
        case EXT_TOKEN:
          if ((CHAR[c]! & TCHAR) !== 0) state = state === EXT_NAME_FIRST ? EXT_NAME : state;
          else if (state !== EXT_NAME_FIRST && c === SEMICOLON) state = EXT_NAME_FIRST;
          else if (state !== EXT_NAME_FIRST && c === CR) state = SIZE_LF;
          else if (state === EXT_NAME && c === 0x3d /* = */) state = EXT_VALUE_FIRST;
          else return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_CHUNK_EXTENSION_INVALID');
          break;
        case EXT_VALUE_FIRST:
          if ((CHAR[c]! & TCHAR) !== 0) state = EXT_TOKEN;
          else if (c === 0x22 /* " */) state = EXT_QUOTED;
          else return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_CHUNK_EXTENSION_INVALID');
          break;
        case EXT_QUOTED:
          if (c === 0x22) state = EXT_AFTER_QUOTED;
          else if (c === 0x5c /* \ */) state = EXT_QUOTED_PAIR;
          else if ((CHAR[c]! & QDTEXT) === 0)
            return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_CHUNK_EXTENSION_INVALID');
          break;
        case EXT_QUOTED_PAIR:
          if ((CHAR[c]! & FIELD) === 0)
            return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_CHUNK_EXTENSION_INVALID');
          state = EXT_QUOTED;
          break;
        case EXT_AFTER_QUOTED:
          if (c === SEMICOLON) state = EXT_NAME_FIRST;
          else if (c === CR) state = SIZE_LF;
          else return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_CHUNK_EXTENSION_INVALID');
          break;
        case SIZE_LF:
          if (c !== LF) return this.fail('CAUSEWAY_H1_BARE_CR');
          this.lineBytes = 0;
          if (this.size === 0) state = TRAILER_START;
          else {
            this.remaining = this.size;
            this.size = 0;
            state = DATA;
          }
          break;
        case DATA_CR:
          if (c !== CR) return this.fail('CAUSEWAY_H1_CHUNK_DATA_CRLF');
          state = DATA_LF;
          break;
        case DATA_LF:
          if (c !== LF) return this.fail('CAUSEWAY_H1_CHUNK_DATA_CRLF');
          state = SIZE_FIRST;
          break;
        case TRAILER_START:
          if ((CHAR[c]! & TCHAR) !== 0) {
            if (++this.trailerFields > this.limits.maxHeaders)
              return this.fail('CAUSEWAY_H1_TOO_MANY_FIELDS');
            state = TRAILER_NAME;
          } else if (c === CR) state = FINAL_LF;
          else if (c === SP || c === HTAB) return this.fail('CAUSEWAY_H1_OBS_FOLD');
          else return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_FIELD_NAME_INVALID');
          break;
        case TRAILER_NAME:
          if (c === COLON) state = TRAILER_VALUE;
          else if ((CHAR[c]! & TCHAR) === 0) {
            if (c === SP || c === HTAB) return this.fail('CAUSEWAY_H1_SPACE_BEFORE_COLON');
            return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_FIELD_NAME_INVALID');
          }
          break;
        case TRAILER_VALUE:
          if (c === CR) state = TRAILER_LF;
          else if ((CHAR[c]! & FIELD) === 0)
            return this.fail(c === LF ? 'CAUSEWAY_H1_BARE_LF' : 'CAUSEWAY_H1_FIELD_VALUE_INVALID');
          break;
        case TRAILER_LF:
          if (c !== LF) return this.fail('CAUSEWAY_H1_BARE_CR');
          state = TRAILER_START;
          break;
        case FINAL_LF:
          if (c !== LF) return this.fail('CAUSEWAY_H1_BARE_CR');
          this.state = DONE;
          return { consumed: i - start, done: true };
      }
    }
    this.state = state;
    return { consumed: i - start, done: false };
  }
}
