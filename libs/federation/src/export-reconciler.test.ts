import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExportReconciler, type LocalExportEvent } from './export-reconciler.ts';
import type { ClusterSource, SourceKind, SourceObject } from '@causeway/cluster';

/** A cluster source in memory whose kinds list when the test says so. */
function memorySource(
  objects: Partial<Record<SourceKind, SourceObject[]>>,
  listed: Set<SourceKind>,
): ClusterSource {
  const of = (kind: SourceKind) => (listed.has(kind) ? (objects[kind] ?? []) : []);
  return {
    mode: 'kubernetes',
    start: async () => {},
    synced: (kind) => listed.has(kind),
    stop: async () => {},
    get: <T extends SourceObject>(kind: SourceKind, namespace: string, name: string) =>
      of(kind).find((o) => o.metadata.namespace === namespace && o.metadata.name === name) as T | undefined,
    list: <T extends SourceObject>(kind: SourceKind, namespace?: string) =>
      of(kind).filter((o) => namespace === undefined || o.metadata.namespace === namespace) as T[],
    updateStatus: async () => true,
    problems: () => [],
    invalid: () => undefined,
  };
}

const meta = (name: string, extra: Record<string, unknown> = {}) => ({ name, namespace: 'shop', ...extra });
const objects: Partial<Record<SourceKind, SourceObject[]>> = {
  ServiceExport: [
    { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: meta('cart') },
  ],
  Service: [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta('cart'),
      spec: { selector: { app: 'cart' }, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    },
  ],
  EndpointSlice: [
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta('cart-1', { labels: { 'kubernetes.io/service-name': 'cart' } }),
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.1.0.7'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    } as SourceObject,
  ],
  Pod: [],
};

test('no export is derived before every kind it reads has listed; held ones are released whole', async () => {
  const listed = new Set<SourceKind>(['ServiceExport', 'Service', 'Pod']);
  const events: LocalExportEvent[] = [];
  const reconciler = new ExportReconciler({
    source: memorySource(objects, listed),
    cluster: 'east',
    trustDomain: 'mesh.test',
    gatewayAddresses: ['192.0.2.10:15443'],
    onEvent: (event) => events.push(event),
  });
  reconciler.resync();
  await reconciler.idle();
  // EndpointSlices not listed yet: publishing now would say 0 ready endpoints.
  assert.equal(events.length, 0);
  assert.deepEqual(reconciler.unlisted(), ['EndpointSlice']);
  assert.equal(reconciler.complete(), false, 'the orphan sweep must wait');
  reconciler.release();
  await reconciler.idle();
  assert.equal(events.length, 0, 'released before the list succeeded');

  listed.add('EndpointSlice');
  reconciler.release();
  assert.equal(reconciler.complete(), false, 'queued keys are not handled yet');
  await reconciler.idle();
  assert.equal(reconciler.complete(), true);
  assert.equal(events.length, 1);
  const [event] = events;
  assert.equal(event?.kind, 'ServiceExported');
  assert.equal(event?.kind === 'ServiceExported' ? event.record.readyEndpoints : -1, 1);
  await reconciler.stop();
});
