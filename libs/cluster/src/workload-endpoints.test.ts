import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SourceObject } from './source.ts';
import { workloadObjects, type RegisteredWorkload } from './workload-endpoints.ts';

const service = (name: string, spec: Record<string, unknown>): SourceObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec,
});

const cart0: RegisteredWorkload = {
  proxy: 'sidecar~shop~cart-0',
  namespace: 'shop',
  serviceAccount: 'cart',
  workload: {
    name: 'cart-0',
    labels: { app: 'cart' },
    address: '127.0.0.1',
    ports: [
      { name: 'http', port: 15006, appPort: 8080 },
      { name: 'admin', port: 15007, appPort: 9090 },
    ],
  },
};

test('a Service selecting a workload gets a slice with the ports its targetPorts name, and the workload a Pod', () => {
  const { pods, slices } = workloadObjects(
    [
      service('cart', {
        selector: { app: 'cart' },
        ports: [
          { name: 'web', port: 80, targetPort: 8080 },
          { name: 'ops', port: 90, targetPort: 'admin' },
        ],
      }),
    ],
    [cart0],
  );
  assert.deepEqual(pods, [
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'cart-0', namespace: 'shop', labels: { app: 'cart' } },
      spec: { serviceAccountName: 'cart' },
    },
  ]);
  assert.equal(slices.length, 1);
  const slice = slices[0] as SourceObject & { ports: unknown; endpoints: unknown; addressType: string };
  assert.deepEqual(slice.metadata.labels, { 'kubernetes.io/service-name': 'cart' });
  assert.equal(slice.metadata.name, 'cart.cart-0');
  assert.equal(slice.addressType, 'IPv4');
  assert.deepEqual(slice.ports, [
    { name: 'web', port: 15006, protocol: 'TCP' },
    { name: 'ops', port: 15007, protocol: 'TCP' },
  ]);
  assert.deepEqual(slice.endpoints, [
    {
      addresses: ['127.0.0.1'],
      conditions: { ready: true },
      targetRef: { kind: 'Pod', namespace: 'shop', name: 'cart-0' },
    },
  ]);
});

test('no slice for a selector that does not match, another namespace, a missing port, or ExternalName', () => {
  const { slices } = workloadObjects(
    [
      service('other', { selector: { app: 'till' }, ports: [{ port: 8080 }] }),
      service('noport', { selector: { app: 'cart' }, ports: [{ port: 80, targetPort: 'grpc' }] }),
      service('ext', { type: 'ExternalName', selector: { app: 'cart' } }),
      service('noselector', { ports: [{ port: 8080 }] }),
    ],
    [cart0, { ...cart0, proxy: 'p2', namespace: 'web' }],
  );
  assert.deepEqual(slices, []);
});
