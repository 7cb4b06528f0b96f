import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClustersetService } from '@causeway/catalog';
import { compileSnapshot, snapshotMessageSchema, type DiscoveryInput } from './snapshot.ts';

const service = (name: string, local: boolean): ClustersetService => ({
  namespace: 'shop',
  name,
  hostname: `${name}.shop.svc.clusterset.local`,
  type: 'ClusterSetIP',
  ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
  backends: [
    ...(local ? [{ kind: 'local' as const, cluster: 'east', endpoints: [], identities: [] }] : []),
    {
      kind: 'remote' as const,
      cluster: 'west',
      gatewayAddresses: ['10.0.0.9:15443'],
      identities: [],
      readyEndpoints: 1,
      stale: false,
    },
  ],
  withdrawn: [],
});

const input: DiscoveryInput = {
  cluster: 'east',
  trustDomain: 'mesh',
  trust: { bundleVersion: 1, bundleHash: 'abc', roots: ['PEM'] },
  services: [service('cart', true), service('pay', false)],
  routes: [],
  policies: [],
};

test('a sidecar gets every clusterset service with every backend', () => {
  const config = compileSnapshot(input, { proxy: 's', kind: 'sidecar' });
  assert.deepEqual(
    config.services.map((s) => [s.name, s.backends.length]),
    [
      ['cart', 2],
      ['pay', 1],
    ],
  );
  assert.deepEqual(config.trust, input.trust);
});

test('an east-west gateway gets only this cluster’s exports, with local backends only', () => {
  const config = compileSnapshot(input, { proxy: 'g', kind: 'east-west-gateway' });
  assert.deepEqual(
    config.services.map((s) => [s.name, s.backends.map((b) => b.kind)]),
    [['cart', ['local']]],
  );
});

test('a snapshot with a missing field is refused as a whole', () => {
  const config = compileSnapshot(input, { proxy: 's', kind: 'sidecar' });
  assert.equal(snapshotMessageSchema.safeParse({ version: 1, config }).success, true);
  const { trust: _trust, ...partial } = config;
  assert.equal(snapshotMessageSchema.safeParse({ version: 1, config: partial }).success, false);
  const broken = { ...config, services: [{ ...config.services[0], backends: [{ kind: 'remote' }] }] };
  assert.equal(snapshotMessageSchema.safeParse({ version: 1, config: broken }).success, false);
});
