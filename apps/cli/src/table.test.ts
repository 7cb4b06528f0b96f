import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTable } from './table.ts';

test('columns are padded to the widest cell, the last one is not', () => {
  assert.equal(
    formatTable(
      ['name', 'url'],
      [
        ['east', 'https://127.0.0.1:1'],
        ['north-west', 'x'],
      ],
    ),
    ['NAME        URL', 'east        https://127.0.0.1:1', 'north-west  x'].join('\n'),
  );
});

test('a table without rows is just its header', () => {
  assert.equal(formatTable(['a', 'b'], []), 'A  B');
});
