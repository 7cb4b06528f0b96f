import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importedSliceName } from './import-writer.ts';

test("imported slices' names never collide, stay valid object names, and do not change between releases", () => {
  // By their names alone these pairs would share `a-b-c`.
  assert.notEqual(importedSliceName('a-b', 'c'), importedSliceName('a', 'b-c'));
  assert.equal(importedSliceName('cart', 'east'), importedSliceName('cart', 'east'));
  assert.match(importedSliceName('cart', 'east'), /^cart-east-[0-9a-f]{10}$/);
  const long = importedSliceName('s'.repeat(253), 'c'.repeat(63));
  assert.equal(long.length, 253);
  assert.match(long, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  assert.notEqual(long, importedSliceName('s'.repeat(253), 'd'.repeat(63)));
});
