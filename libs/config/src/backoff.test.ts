import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, jitter } from './backoff.ts';

test('backoff doubles up to its maximum, each wait between half and all of its step', () => {
  const low = new Backoff({ firstMs: 100, maxMs: 1_000, random: () => 0 });
  const high = new Backoff({ firstMs: 100, maxMs: 1_000, random: () => 0.999999 });
  const lows = Array.from({ length: 7 }, () => low.next());
  const highs = Array.from({ length: 7 }, () => Math.round(high.next()));
  assert.deepEqual(lows, [50, 100, 200, 400, 500, 500, 500]);
  assert.deepEqual(highs, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
  low.reset();
  assert.equal(low.next(), 50);
  assert.equal(low.maxMs, 1_000);
});

test('two backoffs with real randomness do not wait in step', () => {
  const a = new Backoff({ firstMs: 1_000, maxMs: 8_000 });
  const b = new Backoff({ firstMs: 1_000, maxMs: 8_000 });
  const waits = Array.from({ length: 20 }, () => [a.next(), b.next()]);
  assert.ok(waits.some(([x, y]) => x !== y));
  for (const [x] of waits) assert.ok(x! >= 500 && x! <= 8_000, `wait ${x} out of range`);
});

test('bad bounds are refused, naming them', () => {
  assert.throws(() => new Backoff({ firstMs: 0, maxMs: 10 }), /0 < firstMs <= maxMs \(got 0, 10\)/);
  assert.throws(() => new Backoff({ firstMs: 20, maxMs: 10 }), /got 20, 10/);
});

test('jitter stays within its fraction', () => {
  assert.equal(
    jitter(1_000, 0.2, () => 0),
    800,
  );
  assert.equal(
    jitter(1_000, 0.2, () => 0.5),
    1_000,
  );
  assert.ok(Math.abs(jitter(1_000, 0.2, () => 1) - 1_200) < 1e-9);
});
