import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration } from './duration.ts';

test('durations parse to milliseconds and format back', () => {
  const table: Array<[string, number]> = [
    ['250ms', 250],
    ['30s', 30_000],
    ['1h30m', 5_400_000],
    ['24h', 86_400_000],
    ['365d', 31_536_000_000],
  ];
  for (const [text, ms] of table) {
    assert.equal(parseDuration(text), ms, text);
  }
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(86_400_000), '1d');
  assert.equal(formatDuration(250), '250ms');
});

test('anything else is refused with the text quoted', () => {
  for (const bad of ['', '24', 'h', '1.5h', '-1h', '1 h', '0s', '1y']) {
    assert.throws(
      () => parseDuration(bad),
      new RegExp(`'${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`),
      bad,
    );
  }
});
