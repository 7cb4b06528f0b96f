import assert from 'node:assert/strict';
import { test } from 'node:test';
import { orderTargets, preferredClusters, type BalancerState } from './balancer.ts';
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

const north = { ...target('north', false), cluster: 'north' };
const split: Targets = { local: [a, b], remote: [gw, north], all: [a, b, gw, north] };

test('cluster weights: each draw sends the request to a cluster by weight, the others follow as failover', () => {
  const weights = new Map([
    ['east', 80],
    ['west', 20],
  ]);
  const firstCluster = (draw: number) =>
    orderTargets(split, 'RoundRobin', 'p', state({ random: () => draw }), 0, { weights, failover: true })[0]!
      .cluster;
  assert.equal(firstCluster(0), 'east');
  assert.equal(firstCluster(0.79), 'east');
  assert.equal(firstCluster(0.8), 'west');
  assert.equal(firstCluster(0.99), 'west');
  // north has no weight: never first, but still a place to fail over to.
  const order = orderTargets(split, 'RoundRobin', 'p', state({ random: () => 0.9 }), 0, {
    weights,
    failover: true,
  });
  assert.equal(keys(order), 'gw a b north');
});

test('cluster weights skip a cluster whose targets are all ejected; without failover only the first cluster is tried', () => {
  const weights = new Map([
    ['east', 50],
    ['west', 50],
  ]);
  const ejectedUntil = new Map([['gw', 100]]);
  const order = orderTargets(split, 'RoundRobin', 'p', state({ ejectedUntil, random: () => 0.99 }), 0, {
    weights,
    failover: true,
  });
  assert.equal(keys(order), 'a b north gw', 'west is out: east took the draw, the ejected gateway is last');
  const alone = orderTargets(split, 'RoundRobin', 'p', state({ random: () => 0.99 }), 0, {
    weights,
    failover: false,
  });
  assert.equal(keys(alone), 'gw');
});

test('a cluster priority orders whole clusters, unlisted ones after, nearest first', () => {
  const order = orderTargets(split, 'RoundRobin', 'p', state(), 0, { priority: ['north'], failover: true });
  assert.equal(keys(order), 'north a b gw');
  const ejectedUntil = new Map([['north', 100]]);
  const failedOver = orderTargets(split, 'RoundRobin', 'p', state({ ejectedUntil }), 0, {
    priority: ['north', 'west'],
    failover: true,
  });
  assert.equal(keys(failedOver), 'gw a b north');
});

test('the clusters new traffic may go to: the weighted ones, or the first of the priority order still up', () => {
  const none = () => false;
  const weights = new Map([
    ['east', 1],
    ['north', 0],
  ]);
  assert.deepEqual([...preferredClusters(split, { weights, failover: true }, none)], ['east']);
  assert.deepEqual(
    [...preferredClusters(split, { priority: ['north', 'west'], failover: true }, none)],
    ['north'],
  );
  const northOut = (t: Target) => t.cluster === 'north';
  assert.deepEqual(
    [...preferredClusters(split, { priority: ['north', 'west'], failover: true }, northOut)],
    ['west'],
  );
});

test('with every weighted cluster out, a draw among them still (their ejected targets as a last resort); never a cluster without weight first', () => {
  const weights = new Map([['west', 1]]);
  const ejectedUntil = new Map([['gw', 100]]);
  const order = orderTargets(split, 'RoundRobin', 'p', state({ ejectedUntil }), 0, {
    weights,
    failover: false,
  });
  assert.equal(keys(order), 'gw');
  const withFailover = orderTargets(split, 'RoundRobin', 'p', state({ ejectedUntil }), 0, {
    weights,
    failover: true,
  });
  assert.equal(
    withFailover[0]!.key,
    'a',
    'an unweighted cluster serves only as failover: healthy ones first',
  );
  assert.deepEqual(
    [...preferredClusters(split, { weights, failover: false }, (t) => t.key === 'gw')],
    ['west'],
  );
});
