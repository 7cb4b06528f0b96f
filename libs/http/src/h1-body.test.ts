import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyTracker, type BodyProgress } from './h1-body.ts';
import type { BodyFraming } from './h1-head.ts';
import { createH1Limits, type H1Limits } from './h1-limits.ts';

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');
const CHUNKED: BodyFraming = { type: 'chunked' };

/** Feeds `input` in pieces cut at `cuts`; the body's total length, or the error code. */
function track(
  framing: BodyFraming,
  input: Buffer,
  cuts: readonly number[] = [],
  limits?: H1Limits,
): { consumed: number; done: boolean } | string {
  const tracker = new BodyTracker(framing, limits);
  let consumed = 0;
  let offset = 0;
  for (const cut of [...cuts, input.length]) {
    // Each piece arrives in a buffer of its own, as from a socket.
    const piece = Buffer.from(input.subarray(offset, cut));
    offset = cut;
    const progress = tracker.feed(piece, 0);
    if ('error' in progress) return progress.error.code;
    assert.ok(progress.consumed >= 0 && progress.consumed <= piece.length);
    consumed += progress.consumed;
    if (progress.done) return { consumed, done: true };
    assert.equal(progress.consumed, piece.length, 'a body that goes on takes every byte given');
  }
  return { consumed, done: false };
}

test('Content-Length: exactly that many bytes, the rest belongs to the next message', () => {
  const tracker = new BodyTracker({ type: 'length', length: 10 });
  assert.deepEqual(tracker.feed(bytes('abcd'), 0), { consumed: 4, done: false });
  assert.deepEqual(tracker.feed(bytes('xxefghijGET /'), 2), { consumed: 6, done: true });
  assert.deepEqual(tracker.feed(bytes('more'), 0), { consumed: 0, done: true });
  assert.deepEqual(new BodyTracker({ type: 'length', length: 0 }).feed(bytes('GET'), 0), {
    consumed: 0,
    done: true,
  });
  assert.deepEqual(new BodyTracker({ type: 'none' }).feed(bytes('GET'), 0), { consumed: 0, done: true });
  // `end` bounds what is looked at.
  assert.deepEqual(new BodyTracker({ type: 'length', length: 5 }).feed(bytes('abcdef'), 1, 3), {
    consumed: 2,
    done: false,
  });
});

test('close-delimited: every byte until the connection ends', () => {
  const tracker = new BodyTracker({ type: 'close' }, undefined, 'response');
  assert.deepEqual(tracker.feed(bytes('a'.repeat(100)), 0), { consumed: 100, done: false });
  assert.deepEqual(tracker.finish(), { consumed: 0, done: true });
});

test('a body cut short by the end of the connection is truncated', () => {
  const length = new BodyTracker({ type: 'length', length: 3 });
  length.feed(bytes('ab'), 0);
  const truncated = length.finish();
  assert.equal('error' in truncated && truncated.error.code, 'CAUSEWAY_H1_BODY_TRUNCATED');
  const chunked = new BodyTracker(CHUNKED);
  chunked.feed(bytes('0\r\n'), 0);
  assert.equal('error' in chunked.finish(), true);
  const finished = new BodyTracker(CHUNKED);
  finished.feed(bytes('0\r\n\r\n'), 0);
  assert.deepEqual(finished.finish(), { consumed: 0, done: true });
});

const VALID_CHUNKED: Array<[string, string]> = [
  ['one chunk', '5\r\nhello\r\n0\r\n\r\n'],
  ['no chunks', '0\r\n\r\n'],
  ['upper and lower hex, leading zeros', '000A\r\n0123456789\r\na\r\n0123456789\r\n00\r\n\r\n'],
  ['data holding CRLF and NUL', '6\r\n\r\n\x00\r\n\r\r\n0\r\n\r\n'],
  ['extension names', '3;foo;bar\r\nabc\r\n0;last\r\n\r\n'],
  ['token values', '3;a=1;b=x-y\r\nabc\r\n0\r\n\r\n'],
  ['quoted values', '3;a="semi;colon \\" quote";b="\tx"\r\nabc\r\n0\r\n\r\n'],
  ['quoted value with obs-text', '3;a="caf\xe9"\r\nabc\r\n0\r\n\r\n'],
  ['trailer fields', '3\r\nabc\r\n0\r\nDigest: sha-256=abc\r\nx-empty:\r\nX-T:  v  \r\n\r\n'],
];

test('valid chunked bodies end exactly after the trailer section', () => {
  for (const [name, text] of VALID_CHUNKED) {
    const input = bytes(`${text}GET / HTTP/1.1\r\n`);
    assert.deepEqual(track(CHUNKED, input), { consumed: text.length, done: true }, name);
  }
});

const INVALID_CHUNKED: Array<[string, string]> = [
  ['\r\n', 'CHUNK_SIZE_INVALID'],
  ['g\r\n', 'CHUNK_SIZE_INVALID'],
  ['-1\r\n', 'CHUNK_SIZE_INVALID'],
  ['+1\r\n', 'CHUNK_SIZE_INVALID'],
  [' 5\r\n', 'CHUNK_SIZE_INVALID'],
  ['5 \r\nhello\r\n', 'CHUNK_SIZE_INVALID'],
  ['5\t;a\r\nhello\r\n', 'CHUNK_SIZE_INVALID'],
  ['0x5\r\nhello\r\n', 'CHUNK_SIZE_INVALID'],
  ['5\nhello\r\n', 'BARE_LF'],
  ['5\rhello\r\n', 'BARE_CR'],
  ['5;\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5; a\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a =1\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;=1\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a=\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a=b=c\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a=b c\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a="x\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a="x"y\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a="x\\\x00"\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a\x00\r\nhello\r\n', 'CHUNK_EXTENSION_INVALID'],
  ['5;a\nhello\r\n', 'BARE_LF'],
  ['5\r\nhelloX\r\n0\r\n\r\n', 'CHUNK_DATA_CRLF'],
  ['5\r\nhello\n0\r\n\r\n', 'CHUNK_DATA_CRLF'],
  ['5\r\nhello\rX0\r\n\r\n', 'CHUNK_DATA_CRLF'],
  ['5\r\nhello0\r\n\r\n', 'CHUNK_DATA_CRLF'],
  ['20000000000000\r\n', 'CHUNK_SIZE_TOO_LARGE'],
  ['ffffffffffffffffffff\r\n', 'CHUNK_SIZE_TOO_LARGE'],
  [`${'0'.repeat(5000)}5\r\nhello\r\n0\r\n\r\n`, 'CHUNK_LINE_TOO_LONG'],
  [`5;a="${'x'.repeat(5000)}"\r\nhello\r\n0\r\n\r\n`, 'CHUNK_LINE_TOO_LONG'],
  ['0\r\nX: a\r\n b\r\n\r\n', 'OBS_FOLD'],
  ['0\r\n b\r\n\r\n', 'OBS_FOLD'],
  ['0\r\nX: a\n\r\n', 'BARE_LF'],
  ['0\r\n\n', 'BARE_LF'],
  ['0\r\n\rx', 'BARE_CR'],
  ['0\r\nX: a\rb\r\n\r\n', 'BARE_CR'],
  ['0\r\nX : a\r\n\r\n', 'SPACE_BEFORE_COLON'],
  ['0\r\n: a\r\n\r\n', 'FIELD_NAME_INVALID'],
  ['0\r\nX\r\n\r\n', 'FIELD_NAME_INVALID'],
  ['0\r\nX: a\x00\r\n\r\n', 'FIELD_VALUE_INVALID'],
  [`0\r\nX: ${'v'.repeat(17_000)}\r\n\r\n`, 'TRAILER_TOO_LARGE'],
  [`0\r\n${'X: 1\r\n'.repeat(101)}\r\n`, 'TOO_MANY_FIELDS'],
];

test('malformed chunked bodies are refused with their code', () => {
  for (const [text, code] of INVALID_CHUNKED)
    assert.equal(track(CHUNKED, bytes(text)), `CAUSEWAY_H1_${code}`, JSON.stringify(text.slice(0, 40)));
});

test('chunked limits come from H1Limits; the largest safe size is accepted', () => {
  const limits = createH1Limits({ maxChunkLineBytes: 8, maxTrailerBytes: 10, maxHeaders: 1 });
  // A chunk-size line counts through its CRLF: 8 bytes pass, 9 do not.
  assert.deepEqual(track(CHUNKED, bytes('5;abcd\r\nhello\r\n0\r\n\r\n'), [], limits), {
    consumed: 20,
    done: true,
  });
  assert.equal(track(CHUNKED, bytes('5;abcde\r\nhello\r\n'), [], limits), 'CAUSEWAY_H1_CHUNK_LINE_TOO_LONG');
  // The trailer section counts through its final CRLF: 10 bytes pass, 11 do not.
  assert.deepEqual(track(CHUNKED, bytes('0\r\nX: 123\r\n\r\n'), [], limits), { consumed: 13, done: true });
  assert.equal(track(CHUNKED, bytes('0\r\nX: 1234\r\n\r\n'), [], limits), 'CAUSEWAY_H1_TRAILER_TOO_LARGE');
  assert.equal(track(CHUNKED, bytes('0\r\nX: 1\r\nY: 2\r\n\r\n'), [], limits), 'CAUSEWAY_H1_TOO_MANY_FIELDS');
  assert.deepEqual(track(CHUNKED, bytes('1fffffffffffff\r\nabc')), { consumed: 19, done: false });
});

test('every split of a chunked body, and one byte at a time, gives the same outcome', () => {
  const inputs = [
    ...VALID_CHUNKED.map(([, text]) => `${text}NEXT`),
    ...INVALID_CHUNKED.filter(([text]) => text.length < 200).map(([text]) => text),
  ];
  for (const text of inputs) {
    const input = bytes(text);
    const once = track(CHUNKED, input);
    for (let cut = 0; cut <= input.length; cut++)
      assert.deepEqual(track(CHUNKED, input, [cut]), once, `${JSON.stringify(text)} cut at ${cut}`);
    const everyByte = Array.from({ length: input.length }, (_, i) => i);
    assert.deepEqual(track(CHUNKED, input, everyByte), once, JSON.stringify(text));
  }
});

test('after an error every call returns it; errors in a response body are 502', () => {
  const tracker = new BodyTracker(CHUNKED, undefined, 'response');
  const first = tracker.feed(bytes('z\r\n'), 0) as Extract<BodyProgress, { error: unknown }>;
  assert.deepEqual([first.error.status, first.error.code], [502, 'CAUSEWAY_H1_CHUNK_SIZE_INVALID']);
  assert.equal(tracker.feed(bytes('0\r\n\r\n'), 0), first);
  assert.equal(tracker.finish(), first);
});

test('offsets outside the buffer are an error, not a throw, and do not spoil the tracker', () => {
  const tracker = new BodyTracker({ type: 'length', length: 2 });
  for (const [start, end] of [
    [-1, 1],
    [2, 1],
    [0, 9],
    [0.5, 1],
  ] as const) {
    const progress = tracker.feed(bytes('ab'), start, end);
    assert.equal('error' in progress && progress.error.code, 'CAUSEWAY_H1_INVALID_OFFSET');
  }
  assert.deepEqual(tracker.feed(bytes('ab'), 0), { consumed: 2, done: true });
});

/** Feeds `input` in pieces cut at `cuts` to a tracker that hands out the content; that content. */
function content(framing: BodyFraming, input: Buffer, cuts: readonly number[] = []): string {
  const parts: Buffer[] = [];
  const tracker = new BodyTracker(framing, undefined, 'response', (data) => parts.push(Buffer.from(data)));
  let offset = 0;
  for (const cut of [...cuts, input.length]) {
    const progress = tracker.feed(Buffer.from(input.subarray(offset, cut)), 0);
    offset = cut;
    assert.ok(!('error' in progress), JSON.stringify(progress));
    if (progress.done) break;
  }
  return Buffer.concat(parts).toString('latin1');
}

test('the content of a body: chunk data without sizes, extensions or trailers, at any split', () => {
  const chunked = bytes('5;name="v;1"\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\nNEXT');
  for (let cut = 0; cut <= chunked.length; cut++)
    assert.equal(content(CHUNKED, chunked, [cut]), 'hello world', `cut at ${cut}`);
  const everyByte = Array.from({ length: chunked.length }, (_, i) => i);
  assert.equal(content(CHUNKED, chunked, everyByte), 'hello world');
  // A length-framed body is its bytes, and no more; a close-delimited one is everything.
  assert.equal(content({ type: 'length', length: 5 }, bytes('hello, then the next message'), [2]), 'hello');
  assert.equal(content({ type: 'close' }, bytes('all of it'), [3]), 'all of it');
  assert.equal(content({ type: 'none' }, bytes('not a body')), '');
});
