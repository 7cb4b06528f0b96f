import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildClusterset, withdrawals } from './clusterset.ts';
import { mergeCatalog } from './merge.ts';
import type { ExportRecord } from './records.ts';
import type { PeerStatus } from './catalog-sync.ts';

const record = (cluster: string, created: string, extra: Partial<ExportRecord> = {}): ExportRecord => ({
  cluster,
  namespace: 'shop',
  name: 'cart',
  type: 'ClusterSetIP',
  sessionAffinity: 'None',
  ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
  exportCreatedAt: created,
  revision: 1,
  gatewayAddresses: [`${cluster}.gw:15443`],
  readyEndpoints: 2,
  identities: [`spiffe://mesh/ns/shop/sa/cart`],
  ...extra,
});

const peer = (cluster: string, ageSeconds: number, stale = false): PeerStatus => ({
  cluster,
  ageSeconds,
  stale,
  heartbeatSeen: true,
  gatewayAddresses: [],
});

test('this cluster is a local backend with its own endpoints; others are their gateways', () => {
  const records = [record('east', '2026-01-01T00:00:00Z'), record('west', '2026-01-02T00:00:00Z')];
  const [service] = buildClusterset({
    cluster: 'east',
    catalog: mergeCatalog(records),
    records,
    peers: [peer('west', 40, true)],
    withdrawn: new Map(),
    localEndpoints: () => [
      { address: '10.0.0.1', ready: true, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
    ],
  });
  assert.equal(service!.hostname, 'cart.shop.svc.clusterset.local');
  assert.deepEqual(service!.backends, [
    {
      kind: 'local',
      cluster: 'east',
      endpoints: [
        { address: '10.0.0.1', ready: true, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
      ],
      identities: ['spiffe://mesh/ns/shop/sa/cart'],
    },
    {
      kind: 'remote',
      cluster: 'west',
      gatewayAddresses: ['west.gw:15443'],
      identities: ['spiffe://mesh/ns/shop/sa/cart'],
      readyEndpoints: 2,
      stale: true,
    },
  ]);
});

test('an export that lost a type conflict is not a backend', () => {
  const records = [
    record('east', '2026-01-01T00:00:00Z'),
    record('west', '2026-01-02T00:00:00Z', { type: 'Headless' }),
  ];
  const [service] = buildClusterset({
    cluster: 'north',
    catalog: mergeCatalog(records),
    records,
    peers: [],
    withdrawn: new Map(),
    localEndpoints: () => [],
  });
  assert.deepEqual(
    service!.backends.map((b) => b.cluster),
    ['east'],
  );
});

test('withdrawals: only services with a policy, only silent remote clusters, never this one', () => {
  const records = [record('east', '2026-01-01T00:00:00Z'), record('west', '2026-01-02T00:00:00Z')];
  const catalog = mergeCatalog(records);
  const peers = [peer('east', 1), peer('west', 100)];
  assert.deepEqual(withdrawals(new Map(), catalog, peers, 'east'), new Map());
  assert.deepEqual(
    withdrawals(new Map([['shop/cart', 60_000]]), catalog, peers, 'east'),
    new Map([['shop/cart', new Set(['west'])]]),
  );
  assert.deepEqual(withdrawals(new Map([['shop/cart', 200_000]]), catalog, peers, 'east'), new Map());
  // Our own heartbeat is stale too: we are the ones cut off, nothing is withdrawn.
  assert.deepEqual(
    withdrawals(
      new Map([['shop/cart', 60_000]]),
      catalog,
      [peer('east', 100, true), peer('west', 100, true)],
      'east',
    ),
    new Map(),
  );
  const withdrawn = withdrawals(new Map([['shop/cart', 60_000]]), catalog, peers, 'east');
  const [service] = buildClusterset({
    cluster: 'east',
    catalog,
    records,
    peers,
    withdrawn,
    localEndpoints: () => [],
  });
  assert.deepEqual(
    service!.backends.map((b) => b.cluster),
    ['east'],
  );
  assert.deepEqual(service!.withdrawn, ['west']);
});
