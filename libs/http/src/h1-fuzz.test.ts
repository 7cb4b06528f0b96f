import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BodyTracker } from './h1-body.ts';
import { KNOWN_METHODS } from './h1-fields.ts';
import {
  mutate,
  mutatedRequestArbitrary,
  mutatedResponseArbitrary,
  mutationArbitrary,
  VALID_REQUESTS,
} from './h1-fuzz-corpus.ts';
import {
  HeadScan,
  parseRequestHead,
  parseResponseHead,
  type BodyFraming,
  type HeadResult,
  type RequestHead,
} from './h1-head.ts';
import { writeRequestHead } from './h1-write.ts';

const RUNS = { numRuns: 400 };
/** Bytes worth parsing: arbitrary ones, and valid messages slightly broken. */
const requestBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
  mutatedRequestArbitrary,
);
const responseBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
  mutatedResponseArbitrary,
);
/** Offsets to cut an input at, as fractions of its length. */
const cutsArbitrary = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 });

function checkShape(
  result: HeadResult<unknown>,
  buf: Buffer,
  start: number,
  statuses: readonly number[],
): void {
  if (result.kind === 'head') assert.ok(result.end > start && result.end <= buf.length, `end ${result.end}`);
  else if (result.kind === 'error') {
    assert.ok(statuses.includes(result.status), `status ${result.status}`);
    assert.match(result.code, /^CAUSEWAY_H1_[A-Z0-9_]+$/);
  } else assert.equal(result.kind, 'incomplete');
}

/** Feeds growing prefixes of `buf` through one HeadScan; each answer equals a one-shot parse of that prefix. */
function checkPiecewise<T>(
  buf: Buffer,
  fractions: readonly number[],
  parse: (buf: Buffer, scan?: HeadScan) => HeadResult<T>,
): void {
  const cuts = [...fractions.map((f) => Math.floor(f * buf.length)), buf.length].sort((a, b) => a - b);
  const scan = new HeadScan();
  for (const cut of cuts) {
    // Each call sees a fresh copy, as a caller that reallocates its buffer would pass.
    const prefix = Buffer.from(buf.subarray(0, cut));
    const piecewise = parse(prefix, scan);
    assert.deepEqual(piecewise, parse(prefix), `prefix ${cut}`);
    if (piecewise.kind !== 'incomplete') return;
  }
}

test('request heads: never throws, bounded, deterministic, and independent of how bytes arrive', () => {
  fc.assert(
    fc.property(requestBytes, fc.nat(), cutsArbitrary, (buf, startSeed, cuts) => {
      const start = buf.length === 0 ? 0 : startSeed % (buf.length + 1);
      const result = parseRequestHead(buf, start);
      checkShape(result, buf, start, [400, 417, 431, 501, 505]);
      assert.deepEqual(parseRequestHead(buf, start), result);
      checkPiecewise(buf, cuts, (b, scan) => parseRequestHead(b, 0, undefined, scan));
    }),
    RUNS,
  );
});

test('response heads: never throws, bounded, deterministic, and independent of how bytes arrive', () => {
  fc.assert(
    fc.property(
      responseBytes,
      fc.constantFrom('GET', 'HEAD', 'CONNECT', 'POST'),
      cutsArbitrary,
      (buf, method, cuts) => {
        const result = parseResponseHead(buf, 0, method);
        checkShape(result, buf, 0, [502]);
        assert.deepEqual(parseResponseHead(buf, 0, method), result);
        checkPiecewise(buf, cuts, (b, scan) => parseResponseHead(b, 0, method, undefined, scan));
      },
    ),
    RUNS,
  );
});

const OWS_EDGE = /^[ \t]|[ \t]$/;

/** What an accepted request head must satisfy, whatever bytes it came from. */
function checkAccepted(head: RequestHead): void {
  assert.ok(KNOWN_METHODS.includes(head.method));
  assert.match(head.target, /^[\x21-\x22\x24-\x7e]+$/);
  assert.equal(head.headers.length % 2, 0);
  const count = (name: string) => head.headers.filter((value, i) => i % 2 === 0 && value === name).length;
  for (let i = 0; i < head.headers.length; i += 2) {
    assert.match(head.headers[i]!, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
    assert.ok(![...head.headers[i + 1]!].some((c) => (c < ' ' && c !== '\t') || c === '\x7f'));
    assert.doesNotMatch(head.headers[i + 1]!, OWS_EDGE);
  }
  // The framing says exactly what the fields say, with no second opinion left in them.
  const framing: BodyFraming = head.body;
  if (framing.type === 'chunked')
    assert.deepEqual([count('transfer-encoding'), count('content-length')], [1, 0]);
  if (framing.type === 'length')
    assert.deepEqual([count('transfer-encoding'), count('content-length')], [0, 1]);
  if (framing.type === 'none' && head.method !== 'CONNECT') assert.equal(count('transfer-encoding'), 0);
  assert.ok(count('host') <= 1);
  if (head.version === 1) assert.equal(count('host'), 1);
}

test('an accepted request is well-formed, and what the writer makes of it parses back the same', () => {
  fc.assert(
    fc.property(mutatedRequestArbitrary, (buf) => {
      const result = parseRequestHead(buf, 0);
      if (result.kind !== 'head' || result.version !== 1) return;
      checkAccepted(result);
      const again = parseRequestHead(writeRequestHead(result.method, result.target, result.headers), 0);
      assert.equal(again.kind, 'head');
      const { end: _end, ...first } = result;
      const { end: _again, ...second } = again as typeof result;
      assert.deepEqual(second, first);
    }),
    { numRuns: 1_000 },
  );
  for (const text of VALID_REQUESTS) {
    const result = parseRequestHead(Buffer.from(text, 'latin1'), 0);
    assert.equal(result.kind, 'head', text);
    checkAccepted(result as RequestHead);
  }
});

/** The outcome of a chunked body fed in pieces: total consumed and done, or the error code. */
function trackChunked(buf: Buffer, cuts: readonly number[]): string {
  const tracker = new BodyTracker({ type: 'chunked' });
  let consumed = 0;
  let offset = 0;
  for (const cut of [...cuts, buf.length]) {
    const progress = tracker.feed(buf, offset, cut);
    if ('error' in progress) return progress.error.code;
    assert.ok(progress.consumed >= 0 && progress.consumed <= cut - offset);
    consumed += progress.consumed;
    if (progress.done) return `done ${consumed}`;
    offset = cut;
  }
  return `open ${consumed}`;
}

const chunkedArbitrary = fc
  .record({
    chunks: fc.array(
      fc.record({
        data: fc.uint8Array({ minLength: 1, maxLength: 40 }),
        extension: fc.constantFrom('', ';a', ';a=b', ';name="q \\" v"', ';x;y=1'),
        upper: fc.boolean(),
      }),
      { maxLength: 5 },
    ),
    trailers: fc.array(fc.constantFrom('X-A: 1', 'digest: sha=x', 'Empty:'), { maxLength: 3 }),
  })
  .map(({ chunks, trailers }) => {
    const parts = chunks.map(({ data, extension, upper }) => {
      const size = data.length.toString(16);
      return Buffer.concat([
        Buffer.from(`${upper ? size.toUpperCase() : size}${extension}\r\n`),
        Buffer.from(data),
        Buffer.from('\r\n'),
      ]);
    });
    return Buffer.concat([...parts, Buffer.from(`0\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`)]);
  });

test('valid chunked bodies end exactly at their last byte, however they are split', () => {
  fc.assert(
    fc.property(chunkedArbitrary, cutsArbitrary, (body, fractions) => {
      const input = Buffer.concat([body, Buffer.from('GET / HTTP/1.1\r\n')]);
      const cuts = fractions.map((f) => Math.floor(f * input.length)).sort((a, b) => a - b);
      assert.equal(trackChunked(input, cuts), `done ${body.length}`);
    }),
    RUNS,
  );
});

test('any bytes as a chunked body: never throws, and the outcome does not depend on the split', () => {
  const bodies = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    fc
      .tuple(chunkedArbitrary, fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }))
      .map(([body, mutations]) => mutate(body, mutations)),
  );
  fc.assert(
    fc.property(bodies, cutsArbitrary, (input, fractions) => {
      const cuts = fractions.map((f) => Math.floor(f * input.length)).sort((a, b) => a - b);
      assert.equal(trackChunked(input, cuts), trackChunked(input, []));
    }),
    RUNS,
  );
});
