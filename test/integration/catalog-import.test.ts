// Three real API servers and real NATS: an export in one cluster appears as a ServiceImport
// and labelled EndpointSlices in the others, conflicts give the MCS outcome everywhere, and
// an unexport removes the import.
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { type KeyObject } from 'node:crypto';
import { after, before, test } from 'node:test';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CatalogBus } from '@causeway/nats';
import { importedSliceName, KubernetesSource } from '@causeway/cluster';
import { startCatalogController } from '@causeway/federation';
import { createRootCa } from '@causeway/pki';
import { startEnvironment, type Environment } from '@causeway/testing';
import { controllerIdentity } from '../support/controller-identity.ts';

const TD = 'mesh.test';
const CLUSTERS = ['east', 'west', 'north'] as const;
const SE = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports' } as const;
const SI = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceimports' } as const;

let env: Environment;
const connections: NatsConnection[] = [];
const stops: Array<() => Promise<void> | void> = [];
const kube = new Map<string, KubeConfig>();
const errors: string[] = [];

async function startCatalog(
  cluster: string,
  index: number,
  identity: { certificate: X509Certificate; privateKey: KeyObject; chainPem: string },
  root: X509Certificate,
): Promise<() => Promise<void>> {
  const connection = await connect({ servers: env.nats!.url });
  connections.push(connection);
  const controller = await startCatalogController({
    source: new KubernetesSource(kube.get(cluster)!),
    importTo: kube.get(cluster)!,
    cluster,
    trustDomain: TD,
    identity: () => identity,
    roots: () => [root],
    gatewayAddresses: [`127.0.0.${index + 1}:15443`],
    heartbeatIntervalMs: 300,
    staleAfterMs: 1_500,
    onError: (error) => errors.push(`${cluster}: ${String(error)}`),
  });
  await controller.attach(await CatalogBus.open(connection));
  const stop = () => controller.stop();
  stops.push(stop);
  return stop;
}

const identities = new Map<
  string,
  { certificate: X509Certificate; privateKey: KeyObject; chainPem: string }
>();
let rootCertificate: X509Certificate;

before(async () => {
  env = await startEnvironment({ clusterNames: [...CLUSTERS], nats: true });
  const root = await createRootCa({ trustDomain: TD });
  rootCertificate = root.certificate;
  for (const [index, cluster] of CLUSTERS.entries()) {
    kube.set(cluster, env.clusters[index]!.kubeConfig());
    identities.set(cluster, await controllerIdentity(root, TD, cluster));
    await startCatalog(cluster, index, identities.get(cluster)!, root.certificate);
  }
});

after(async () => {
  for (const stop of stops) await stop();
  for (const connection of connections) await connection.close();
  await env?.dispose();
});

async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 150; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out waiting for ${what}; last error: ${String(last)}; errors: ${errors.join(' | ')}`,
  );
}

async function exportFrom(
  cluster: string,
  name: string,
  ports: Array<{ name: string; port: number }>,
  headless = false,
): Promise<void> {
  const kubeConfig = kube.get(cluster)!;
  await kubeConfig
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: 'shop' } } })
    .catch(() => undefined);
  await kubeConfig.makeApiClient(CoreV1Api).createNamespacedService({
    namespace: 'shop',
    body: {
      metadata: { name },
      spec: {
        ports: ports.map((p) => ({ ...p, protocol: 'TCP' })),
        selector: { app: name },
        ...(headless ? { clusterIP: 'None' } : {}),
      },
    },
  });
  await kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    ...SE,
    namespace: 'shop',
    body: { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { name } },
  });
}

type ServiceImportObject = {
  spec: { type: string; ports: Array<{ name?: string; port: number }> };
  status?: {
    clusters?: Array<{ cluster: string }>;
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  };
};

const serviceImport = async (cluster: string, name: string): Promise<ServiceImportObject | undefined> => {
  try {
    return (await kube
      .get(cluster)!
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...SI, namespace: 'shop', name })) as ServiceImportObject;
  } catch (error) {
    if ((error as { code?: number }).code === 404) return undefined;
    throw error;
  }
};

const condition = async (cluster: string, name: string, type: string) => {
  const object = (await kube
    .get(cluster)!
    .makeApiClient(CustomObjectsApi)
    .getNamespacedCustomObject({ ...SE, namespace: 'shop', name })) as {
    status?: { conditions?: Array<{ type: string; status: string; reason: string }> };
  };
  const found = object.status?.conditions?.find((c) => c.type === type);
  return found ? `${found.status}/${found.reason}` : undefined;
};

test('an export in east appears as a ServiceImport and a labelled EndpointSlice in west and north', async () => {
  await exportFrom('east', 'cart', [{ name: 'http', port: 80 }]);
  for (const cluster of ['west', 'north']) {
    const imported = await eventually(`ServiceImport in ${cluster}`, async () => {
      const si = await serviceImport(cluster, 'cart');
      return si?.status?.clusters?.length ? si : undefined;
    });
    assert.equal(imported.spec.type, 'ClusterSetIP');
    assert.deepEqual(imported.spec.ports, [{ name: 'http', protocol: 'TCP', port: 80 }]);
    assert.deepEqual(imported.status?.clusters, [{ cluster: 'east' }]);
    const slices = await kube.get(cluster)!.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: 'shop',
      labelSelector:
        'multicluster.kubernetes.io/service-name=cart,multicluster.kubernetes.io/source-cluster=east',
    });
    assert.equal(slices.items.length, 1);
    assert.deepEqual(
      slices.items[0]!.endpoints!.map((e) => e.addresses),
      [['127.0.0.1']],
    );
  }
  assert.equal(await eventually('Valid on east', () => condition('east', 'cart', 'Valid')), 'True/Valid');
  assert.equal(
    await eventually('Conflict on east', () => condition('east', 'cart', 'Conflict')),
    'False/NoConflicts',
  );
});

test("an imported EndpointSlice under an earlier release's name (<service>-<cluster>) or of another address type is replaced, and a local Service's slice of that name is left alone", async () => {
  const discovery = kube.get('west')!.makeApiClient(DiscoveryV1Api);
  await kube
    .get('west')!
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: 'shop' } } })
    .catch(() => undefined);
  const slice = (name: string, labels: Record<string, string>) => ({
    metadata: { name, labels },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['192.0.2.7'] }],
    ports: [{ name: 'east-west', port: 15443, protocol: 'TCP' }],
  });
  // What an earlier release wrote for depot from east...
  await discovery.createNamespacedEndpointSlice({
    namespace: 'shop',
    body: slice('depot-east', {
      'multicluster.kubernetes.io/service-name': 'depot',
      'multicluster.kubernetes.io/source-cluster': 'east',
      'endpointslice.kubernetes.io/managed-by': 'causeway.dev',
    }),
  });
  // ...and a local Service's slice whose name the old scheme would have taken (depot-north).
  await discovery.createNamespacedEndpointSlice({
    namespace: 'shop',
    body: slice('depot-north', { 'kubernetes.io/service-name': 'depot-north' }),
  });
  // ...and north's slice under its new name but of another address type (an IP gateway
  // before; the gateways here are on loopback, written as FQDN): its type cannot be changed.
  await discovery.createNamespacedEndpointSlice({
    namespace: 'shop',
    body: slice(importedSliceName('depot', 'north'), {
      'multicluster.kubernetes.io/service-name': 'depot',
      'multicluster.kubernetes.io/source-cluster': 'north',
      'endpointslice.kubernetes.io/managed-by': 'causeway.dev',
    }),
  });
  await exportFrom('east', 'depot', [{ name: 'http', port: 80 }]);
  await exportFrom('north', 'depot', [{ name: 'http', port: 80 }]);
  const names = await eventually('depot imported in west under the new names', async () => {
    const slices = await discovery.listNamespacedEndpointSlice({
      namespace: 'shop',
      labelSelector: 'multicluster.kubernetes.io/service-name=depot',
    });
    const found = slices.items.map((s) => s.metadata!.name!).sort();
    const types = slices.items.map((s) => s.addressType);
    return found.length === 2 && !found.includes('depot-east') && types.every((t) => t === 'FQDN')
      ? found
      : undefined;
  });
  assert.deepEqual(names, [importedSliceName('depot', 'east'), importedSliceName('depot', 'north')].sort());
  const local = await discovery.readNamespacedEndpointSlice({ name: 'depot-north', namespace: 'shop' });
  assert.deepEqual(local.endpoints?.[0]?.addresses, ['192.0.2.7'], 'the local slice is untouched');
});

test('conflicting ports give the MCS outcome on every cluster, and the newer export gets PortConflict', async () => {
  await exportFrom('west', 'pay', [{ name: 'http', port: 80 }]);
  await new Promise((r) => setTimeout(r, 1_100)); // creationTimestamps have one-second resolution
  await exportFrom('north', 'pay', [
    { name: 'web', port: 80 },
    { name: 'admin', port: 8081 },
  ]);
  for (const cluster of CLUSTERS) {
    const imported = await eventually(`pay merged in ${cluster}`, async () => {
      const si = await serviceImport(cluster, 'pay');
      return si?.status?.clusters?.length === 2 ? si : undefined;
    });
    assert.deepEqual(imported.spec.ports, [
      { name: 'http', protocol: 'TCP', port: 80 },
      { name: 'admin', protocol: 'TCP', port: 8081 },
    ]);
    assert.deepEqual(imported.status?.clusters, [{ cluster: 'north' }, { cluster: 'west' }]);
  }
  assert.equal(
    await eventually('Conflict on north', async () =>
      (await condition('north', 'pay', 'Conflict')) === 'True/PortConflict' ? 'yes' : undefined,
    ),
    'yes',
  );
  assert.equal(
    await eventually('no Conflict on west', () => condition('west', 'pay', 'Conflict')),
    'False/NoConflicts',
  );
});

test('unexporting removes the ServiceImport and its slices elsewhere', async () => {
  await kube
    .get('east')!
    .makeApiClient(CustomObjectsApi)
    .deleteNamespacedCustomObject({ ...SE, namespace: 'shop', name: 'cart' });
  for (const cluster of ['west', 'north']) {
    await eventually(`cart gone from ${cluster}`, async () =>
      (await serviceImport(cluster, 'cart')) === undefined ? true : undefined,
    );
    const slices = await kube.get(cluster)!.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: 'shop',
      labelSelector: 'multicluster.kubernetes.io/service-name=cart',
    });
    assert.equal(slices.items.length, 0);
  }
});

test('conflicting types: the oldest export wins everywhere, the newer one gets TypeConflict and is left out', async () => {
  await exportFrom('east', 'search', [{ name: 'http', port: 80 }]);
  await new Promise((r) => setTimeout(r, 1_100));
  await exportFrom('west', 'search', [{ name: 'http', port: 80 }], true);
  for (const cluster of CLUSTERS) {
    const imported = await eventually(`search in ${cluster}`, async () => {
      const si = await serviceImport(cluster, 'search');
      return si?.status?.clusters?.length ? si : undefined;
    });
    assert.equal(imported.spec.type, 'ClusterSetIP');
    assert.deepEqual(imported.status?.clusters, [{ cluster: 'east' }]);
  }
  assert.equal(
    await eventually('TypeConflict on west', async () =>
      (await condition('west', 'search', 'Conflict')) === 'True/TypeConflict' ? 'yes' : undefined,
    ),
    'yes',
  );
  assert.equal(await condition('east', 'search', 'Conflict'), 'False/NoConflicts');
  const slices = await kube.get('north')!.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
    namespace: 'shop',
    labelSelector: 'multicluster.kubernetes.io/service-name=search',
  });
  assert.deepEqual(
    slices.items.map((slice) => slice.metadata?.labels?.['multicluster.kubernetes.io/source-cluster']),
    ['east'],
  );
});

test('a silent cluster is stale everywhere; only a TrafficPolicy withdrawAfter withdraws it, and it returns', async () => {
  await exportFrom('north', 'stock', [{ name: 'http', port: 80 }]);
  await kube
    .get('west')!
    .makeApiClient(CustomObjectsApi)
    .createNamespacedCustomObject({
      group: 'policy.causeway.dev',
      version: 'v1alpha1',
      plural: 'trafficpolicies',
      namespace: 'shop',
      body: {
        apiVersion: 'policy.causeway.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'stock-staleness' },
        spec: {
          targetRefs: [{ group: 'multicluster.x-k8s.io', kind: 'ServiceImport', name: 'stock' }],
          staleness: { withdrawAfter: '3s' },
        },
      },
    });
  for (const cluster of ['east', 'west'])
    await eventually(`stock in ${cluster}`, async () =>
      (await serviceImport(cluster, 'stock'))?.status?.clusters?.length === 1 ? true : undefined,
    );

  // North's controller stops: no more heartbeats.
  const northIndex = CLUSTERS.indexOf('north');
  await stops.splice(northIndex, 1)[0]!();
  const staleOf = (si: ServiceImportObject | undefined) =>
    si?.status?.conditions?.find((c) => c.type === 'causeway.dev/Stale');
  const withdrawn = await eventually('stock withdrawn in west', async () => {
    const si = await serviceImport('west', 'stock');
    return si?.status?.clusters?.length === 0 ? si : undefined;
  });
  assert.match(
    staleOf(withdrawn)!.message,
    /north: no heartbeat since .* \(withdrawn by TrafficPolicy staleness\)/,
  );
  const westSlices = await kube.get('west')!.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
    namespace: 'shop',
    labelSelector: 'multicluster.kubernetes.io/service-name=stock',
  });
  assert.equal(westSlices.items.length, 0);
  // East has no such policy: north is stale there, and its endpoints stay.
  const kept = await eventually('stock stale in east', async () => {
    const si = await serviceImport('east', 'stock');
    return staleOf(si)?.status === 'True' ? si : undefined;
  });
  assert.deepEqual(kept.status?.clusters, [{ cluster: 'north' }]);
  assert.match(staleOf(kept)!.message, /\(endpoints kept\)/);

  // North comes back: the withdrawal ends by itself.
  await startCatalog('north', northIndex, identities.get('north')!, rootCertificate);
  await eventually('stock back in west', async () => {
    const si = await serviceImport('west', 'stock');
    return si?.status?.clusters?.length === 1 && staleOf(si)?.status === 'False' ? true : undefined;
  });
});

test('a service unexported while a controller was down loses its import there once it is back', async () => {
  await exportFrom('east', 'gone', [{ name: 'http', port: 80 }]);
  await eventually('gone in west', async () =>
    (await serviceImport('west', 'gone'))?.status?.clusters?.length === 1 ? true : undefined,
  );
  const westIndex = CLUSTERS.indexOf('west');
  await stops.splice(westIndex, 1)[0]!();
  await kube
    .get('east')!
    .makeApiClient(CustomObjectsApi)
    .deleteNamespacedCustomObject({ ...SE, namespace: 'shop', name: 'gone' });
  await eventually('gone unexported from north', async () =>
    (await serviceImport('north', 'gone')) === undefined ? true : undefined,
  );
  // West's import is still there: nobody was running to remove it.
  assert.ok(await serviceImport('west', 'gone'));
  // A new west controller (no state of its own) learns the tombstone and removes it.
  await startCatalog('west', westIndex, identities.get('west')!, rootCertificate);
  await eventually('gone removed from west', async () =>
    (await serviceImport('west', 'gone')) === undefined ? true : undefined,
  );
  const slices = await kube.get('west')!.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
    namespace: 'shop',
    labelSelector: 'multicluster.kubernetes.io/service-name=gone',
  });
  assert.equal(slices.items.length, 0);
});
