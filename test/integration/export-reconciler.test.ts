// ServiceExports in a real kube-apiserver become export records, and their Valid
// condition tells the truth: NoService, InvalidServiceType, Valid.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import { KubernetesSource } from '@causeway/cluster';
import { ExportReconciler, type LocalExportEvent } from '@causeway/federation';
import { startKubeControlPlane, type KubeControlPlane } from '@causeway/testing';

const MCS = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports' } as const;

let cluster: KubeControlPlane;
let kubeConfig: KubeConfig;
let reconciler: ExportReconciler;
let source: KubernetesSource;
const events: LocalExportEvent[] = [];
const errors: unknown[] = [];

before(async () => {
  cluster = await startKubeControlPlane({ name: 'east', serviceCidr: '10.96.0.0/16' });
  kubeConfig = cluster.kubeConfig();
  await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'shop' } } });
  source = new KubernetesSource(kubeConfig, (error) => errors.push(error));
  reconciler = new ExportReconciler({
    source,
    cluster: 'east',
    trustDomain: 'mesh.test',
    gatewayAddresses: ['127.0.0.1:15443'],
    onEvent: (event) => events.push(event),
    onError: (error) => errors.push(error),
  });
  await source.start((event) => reconciler.handle(event));
  reconciler.resync();
});

after(async () => {
  await source?.stop();
  await reconciler?.stop();
  await cluster?.dispose();
});

async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out waiting for ${what}; events: ${JSON.stringify(events)}; errors: ${errors.map(String).join(', ')}`,
  );
}

async function validCondition(name: string): Promise<{ status: string; reason: string } | undefined> {
  const object = (await kubeConfig
    .makeApiClient(CustomObjectsApi)
    .getNamespacedCustomObject({ ...MCS, namespace: 'shop', name })) as {
    status?: { conditions?: Array<{ type: string; status: string; reason: string }> };
  };
  const condition = object.status?.conditions?.find((c) => c.type === 'Valid');
  return condition ? { status: condition.status, reason: condition.reason } : undefined;
}

async function exportService(name: string): Promise<void> {
  await kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    ...MCS,
    namespace: 'shop',
    body: { apiVersion: `${MCS.group}/${MCS.version}`, kind: 'ServiceExport', metadata: { name } },
  });
}

const core = () => kubeConfig.makeApiClient(CoreV1Api);

test('a Service with a ServiceExport is exported with Valid=True, its ports, ready endpoints and serving identities', async () => {
  // The pod behind an endpoint gives the identity that serves it (its service account).
  await core().createNamespacedServiceAccount({ namespace: 'shop', body: { metadata: { name: 'cart' } } });
  await core().createNamespacedPod({
    namespace: 'shop',
    body: {
      metadata: { name: 'cart-0', labels: { app: 'cart' } },
      spec: { serviceAccountName: 'cart', containers: [{ name: 'app', image: 'example.invalid/cart:1' }] },
    },
  });
  await core().createNamespacedService({
    namespace: 'shop',
    body: {
      metadata: { name: 'cart' },
      spec: {
        ports: [{ name: 'http', port: 80, protocol: 'TCP', appProtocol: 'http' }],
        selector: { app: 'cart' },
      },
    },
  });
  await kubeConfig.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
    namespace: 'shop',
    body: {
      metadata: { name: 'cart-1', labels: { 'kubernetes.io/service-name': 'cart' } },
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['10.244.0.1'],
          conditions: { ready: true },
          targetRef: { kind: 'Pod', name: 'cart-0' },
        },
        { addresses: ['10.244.0.2'], conditions: { ready: true } },
        { addresses: ['10.244.0.3'], conditions: { ready: false } },
      ],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  });
  await exportService('cart');
  const exported = await eventually('cart exported with 2 ready endpoints', () =>
    events.find(
      (e) => e.kind === 'ServiceExported' && e.record.name === 'cart' && e.record.readyEndpoints === 2,
    ),
  );
  assert.ok(exported.kind === 'ServiceExported');
  assert.deepEqual(exported.record.ports, [{ name: 'http', protocol: 'TCP', port: 80, appProtocol: 'http' }]);
  assert.equal(exported.record.type, 'ClusterSetIP');
  assert.deepEqual(exported.record.identities, ['spiffe://mesh.test/ns/shop/sa/cart']);
  assert.deepEqual(await eventually('Valid=True', () => validCondition('cart')), {
    status: 'True',
    reason: 'Valid',
  });
  // Its own status write comes back as a watch event; that, and a label change on the
  // ServiceExport, export nothing new: only a real change makes a new revision.
  await kubeConfig.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject({
    ...MCS,
    namespace: 'shop',
    name: 'cart',
    body: [{ op: 'add', path: '/metadata/labels', value: { team: 'a' } }],
  });
  await new Promise((r) => setTimeout(r, 1_000));
  await reconciler.idle();
  assert.equal(events.filter((e) => e.kind === 'ServiceExported' && e.record.name === 'cart').length, 1);
});

test('a ServiceExport without its Service gets Valid=False NoService, then Valid=True once the Service exists', async () => {
  await exportService('ghost');
  assert.deepEqual(await eventually('NoService', () => validCondition('ghost')), {
    status: 'False',
    reason: 'NoService',
  });
  assert.equal(
    events.some((e) => e.kind === 'ServiceExported' && e.record.name === 'ghost'),
    false,
  );
  await core().createNamespacedService({
    namespace: 'shop',
    body: {
      metadata: { name: 'ghost' },
      spec: { clusterIP: 'None', ports: [{ port: 53, protocol: 'UDP' }] },
    },
  });
  await eventually('ghost exported as Headless', () =>
    events.find(
      (e) => e.kind === 'ServiceExported' && e.record.name === 'ghost' && e.record.type === 'Headless',
    ),
  );
  assert.deepEqual(
    await eventually('Valid=True', async () =>
      (await validCondition('ghost'))?.status === 'True' ? await validCondition('ghost') : undefined,
    ),
    {
      status: 'True',
      reason: 'Valid',
    },
  );
});

test('an ExternalName Service gets Valid=False InvalidServiceType, and the reconciler keeps going', async () => {
  await core().createNamespacedService({
    namespace: 'shop',
    body: { metadata: { name: 'ext' }, spec: { type: 'ExternalName', externalName: 'example.test' } },
  });
  await exportService('ext');
  assert.deepEqual(await eventually('InvalidServiceType', () => validCondition('ext')), {
    status: 'False',
    reason: 'InvalidServiceType',
  });
  assert.equal(
    events.some((e) => e.kind === 'ServiceExported' && e.record.name === 'ext'),
    false,
  );
});

test('deleting the ServiceExport unexports the service', async () => {
  await kubeConfig
    .makeApiClient(CustomObjectsApi)
    .deleteNamespacedCustomObject({ ...MCS, namespace: 'shop', name: 'cart' });
  await eventually('cart unexported', () =>
    events.find((e) => e.kind === 'ServiceUnexported' && e.name === 'cart'),
  );
});
