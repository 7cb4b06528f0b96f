import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeTarget } from './http-util.ts';

test('request targets are normalized the way authorization must see them', () => {
  const cases: Array<[string, string | undefined]> = [
    ['/admin', '/admin'],
    ['/%61dmin/x', '/admin/x'],
    ['//admin', '/admin'],
    ['/./admin', '/admin'],
    ['/x/../admin?q=/..', '/admin?q=/..'],
    ['/a/b/..', '/a/'],
    ['/../../etc', '/etc'],
    ['/a%2fb', '/a%2Fb'],
    ['http://x/admin', undefined],
    ['*', undefined],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeTarget(input), expected, input);
});
