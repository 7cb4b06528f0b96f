import assert from 'node:assert/strict';
import { test } from 'node:test';
import { orderTargets, type BalancerState } from './balancer.ts';
import type { Target, Targets } from './routing.ts';

const target = (key: string, local: boolean): Target => ({
  key,
  cluster: local ? 'east' : 'west',
  local,
  host: '127.0.0.1',
  port: 1,
  identities: [],
});
const a = target('a', true);
const b = target('b', true);
const c = target('c', true);
const gw = target('gw', false);
const targets: Targets = { local: [a, b, c], remote: [gw], all: [a, b, c, gw] };
const keys = (list: readonly Target[]) => list.map((t) => t.key).join(' ');
const state = (over: Partial<BalancerState> = {}): BalancerState => ({
  ejectedUntil: new Map(),
  roundRobin: new Map(),
  active: () => 0,
  ...over,
});

test('round robin starts each new request on the next healthy local endpoint, other clusters last', () => {
  const s = state();
  const seen = [0, 1, 2, 3].map(() => keys(orderTargets(targets, 'RoundRobin', 'ns/cart:80', s, 0)));
  assert.deepEqual(seen, ['a b c gw', 'b c a gw', 'c a b gw', 'a b c gw']);
});

test('least request picks the less busy of two random choices', () => {
  const active = (key: string) => (key === 'a' ? 5 : key === 'b' ? 0 : 9);
  // random() = 0 picks a first, then b (the next one): b is less busy.
  const order = orderTargets(targets, undefined, 'p', state({ active, random: () => 0 }), 0);
  assert.equal(order[0]!.key, 'b');
});

test('ejected targets go last, remote before local, until their time is up', () => {
  const ejectedUntil = new Map([
    ['a', 100],
    ['gw', 100],
  ]);
  assert.equal(keys(orderTargets(targets, 'RoundRobin', 'p', state({ ejectedUntil }), 50)), 'b c gw a');
  assert.equal(keys(orderTargets(targets, 'RoundRobin', 'p', state({ ejectedUntil }), 100)), 'a b c gw');
});

test("one local endpoint and nothing ejected: the config's own order, unchanged", () => {
  const one: Targets = { local: [a], remote: [gw], all: [a, gw] };
  assert.equal(orderTargets(one, 'Random', 'p', state(), 0), one.all);
});
