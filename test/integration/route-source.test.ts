// HTTPRoutes, GRPCRoutes and policies in a real kube-apiserver: compiled for proxies by the
// catalog controller, with Accepted/ResolvedRefs written back to each route's status.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { createRootCa } from '@causeway/pki';
import { KubernetesSource } from '@causeway/cluster';
import { startCatalogController, type CatalogController } from '@causeway/federation';
import { eventually, kubectlGet, startKubeControlPlane, type KubeControlPlane } from '@causeway/testing';
import { controllerIdentity } from '../support/controller-identity.ts';

const TD = 'mesh.test';
const GW = { group: 'gateway.networking.k8s.io', version: 'v1' } as const;

let cluster: KubeControlPlane;
let kubeConfig: KubeConfig;
let controller: CatalogController;
let changes = 0;
let stateDir: string;
/** Starts the catalog controller (again, after a stop: same API server, same state folder). */
let startController: () => Promise<CatalogController>;

before(async () => {
  cluster = await startKubeControlPlane({ name: 'east', serviceCidr: '10.96.0.0/16' });
  kubeConfig = cluster.kubeConfig();
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'shop' } } });
  await core.createNamespacedService({
    namespace: 'shop',
    body: { metadata: { name: 'cart' }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
  });
  const root = await createRootCa({ trustDomain: TD });
  const identity = await controllerIdentity(root, TD, 'east');
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'causeway-routes-'));
  // No NATS: the Kubernetes side runs on its own.
  startController = () =>
    startCatalogController({
      source: new KubernetesSource(kubeConfig),
      importTo: kubeConfig,
      cluster: 'east',
      trustDomain: TD,
      identity: () => identity,
      roots: () => [root.certificate],
      gatewayAddresses: ['127.0.0.1:15443'],
      heartbeatIntervalMs: 300,
      policyStatePath: path.join(stateDir, 'traffic-policies.json'),
      onChange: () => changes++,
    });
  controller = await startController();
});

after(async () => {
  await controller?.stop();
  await cluster?.dispose();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

const create = (
  plural: string,
  body: Record<string, unknown>,
  group: string = GW.group,
  version: string = GW.version,
) =>
  kubeConfig
    .makeApiClient(CustomObjectsApi)
    .createNamespacedCustomObject({ group, version, plural, namespace: 'shop', body });

type RouteStatus = {
  status?: {
    parents?: Array<{
      controllerName: string;
      conditions: Array<{ type: string; status: string; reason: string }>;
    }>;
  };
};

/** A route's conditions from Causeway, per parent, as kubectl shows them. */
const statusOf = async (plural: string, name: string): Promise<string[][]> => {
  const route = await kubectlGet<RouteStatus>(cluster, [`${plural}.${GW.group}`, '-n', 'shop', name]);
  return (route.status?.parents ?? [])
    .filter((p) => p.controllerName === 'causeway.dev/federation-controller')
    .map((p) => p.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`));
};

test('a mesh HTTPRoute is compiled for sidecars and its status says which backend is missing', async () => {
  const before = changes;
  await create('httproutes', {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'cart-split' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'cart', port: 80 }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/v2' } }],
          backendRefs: [
            { name: 'cart', port: 80, weight: 90 },
            { name: 'cart-canary', port: 80, weight: 10 },
          ],
        },
      ],
    },
  });
  await eventually(async () => {
    assert.deepEqual(await statusOf('httproutes', 'cart-split'), [
      ['Accepted=True/Accepted', 'ResolvedRefs=False/BackendNotFound'],
    ]);
  }, 15_000);
  const route = controller.routes().find((r) => r.name === 'cart-split')!;
  assert.deepEqual(route.parents, [{ kind: 'Service', namespace: 'shop', name: 'cart', port: 80 }]);
  assert.deepEqual(
    route.rules[0]!.backends.map((b) => [b.name, b.weight, b.resolved]),
    [
      ['cart', 90, true],
      ['cart-canary', 10, false],
    ],
  );
  assert.deepEqual(route.rules[0]!.matches, [{ path: { type: 'PathPrefix', value: '/v2' } }]);
  assert.ok(changes > before, 'proxies were not told about the route');

  // The missing backend appears: ResolvedRefs turns True.
  await kubeConfig.makeApiClient(CoreV1Api).createNamespacedService({
    namespace: 'shop',
    body: { metadata: { name: 'cart-canary' }, spec: { ports: [{ port: 80, protocol: 'TCP' }] } },
  });
  await eventually(async () => {
    assert.deepEqual(await statusOf('httproutes', 'cart-split'), [
      ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
  }, 15_000);
});

test('a GRPCRoute on a Gateway that does not exist is not accepted; policies reach the proxy config', async () => {
  await create('grpcroutes', {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name: 'orders' },
    spec: { parentRefs: [{ name: 'public' }], rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }] },
  });
  await create(
    'authorizationpolicies',
    {
      apiVersion: 'policy.causeway.dev/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'cart-deny' },
      spec: {
        targetRefs: [{ group: '', kind: 'Service', name: 'cart' }],
        action: 'DENY',
        rules: [{ from: [{ namespaces: ['untrusted'] }] }],
      },
    },
    'policy.causeway.dev',
    'v1alpha1',
  );
  await eventually(async () => {
    assert.deepEqual(await statusOf('grpcroutes', 'orders'), [
      ['Accepted=False/NoMatchingParent', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
  }, 15_000);
  assert.equal(
    controller.routes().some((r) => r.name === 'orders'),
    false,
  );
  await eventually(async () => {
    assert.deepEqual(
      controller.policies().map((p) => [p.kind, p.name]),
      [['AuthorizationPolicy', 'cart-deny']],
    );
  }, 10_000);
});

test('a route deleted and created again with the same content gets its status again', async () => {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  await custom.deleteNamespacedCustomObject({
    ...GW,
    plural: 'httproutes',
    namespace: 'shop',
    name: 'cart-split',
  });
  await eventually(async () => {
    assert.equal(
      controller.routes().some((r) => r.name === 'cart-split'),
      false,
    );
  }, 10_000);
  await create('httproutes', {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'cart-split' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'cart', port: 80 }],
      rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }],
    },
  });
  await eventually(async () => {
    assert.deepEqual(await statusOf('httproutes', 'cart-split'), [
      ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
  }, 15_000);
});

test('a TrafficPolicy that breaks a rule is Accepted=False/Invalid naming the field, the last valid spec stays with proxies; a second policy on the Service is Conflicted', async () => {
  const POLICY = { group: 'policy.causeway.dev', version: 'v1alpha1', plural: 'trafficpolicies' } as const;
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const acceptedOf = async (name: string) => {
    const object = (await custom.getNamespacedCustomObject({ ...POLICY, namespace: 'shop', name })) as {
      status?: {
        ancestors?: Array<{
          controllerName: string;
          ancestorRef: { kind: string; name: string };
          conditions: Array<{ type: string; status: string; reason: string; message: string }>;
        }>;
      };
    };
    return (object.status?.ancestors ?? [])
      .filter((a) => a.controllerName === 'causeway.dev/federation-controller')
      .map((a) => {
        const condition = a.conditions.find((c) => c.type === 'Accepted')!;
        return `${a.ancestorRef.kind}/${a.ancestorRef.name} ${condition.status}/${condition.reason}: ${condition.message}`;
      });
  };
  const inForce = () =>
    controller
      .policies()
      .filter((p) => p.kind === 'TrafficPolicy')
      .map((p) => [p.name, (p.spec as { retries?: { perTryTimeout?: string } }).retries?.perTryTimeout]);
  await create(
    POLICY.plural,
    {
      apiVersion: 'policy.causeway.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'cart-retries' },
      spec: {
        targetRefs: [{ group: '', kind: 'Service', name: 'cart' }],
        timeouts: { request: '2s' },
        retries: { attempts: 3, perTryTimeout: '500ms' },
      },
    },
    POLICY.group,
    POLICY.version,
  );
  await eventually(async () => {
    assert.deepEqual(await acceptedOf('cart-retries'), ['Service/cart True/Accepted: the policy applies']);
    assert.deepEqual(inForce(), [['cart-retries', '500ms']]);
  }, 15_000);

  // The API server takes it (each field is well formed); the controller refuses it.
  const current = (await custom.getNamespacedCustomObject({
    ...POLICY,
    namespace: 'shop',
    name: 'cart-retries',
  })) as { spec: { retries: Record<string, unknown> } };
  current.spec.retries.perTryTimeout = '5s';
  await custom.replaceNamespacedCustomObject({
    ...POLICY,
    namespace: 'shop',
    name: 'cart-retries',
    body: current,
  });
  await eventually(async () => {
    const [condition] = await acceptedOf('cart-retries');
    assert.match(
      condition ?? '',
      /^Service\/cart False\/Invalid: spec\.retries\.perTryTimeout: 5s is longer than timeouts\.request \(2s\).*the last valid spec \(generation 1\) stays in force$/,
    );
  }, 15_000);
  assert.deepEqual(inForce(), [['cart-retries', '500ms']], 'proxies keep the last valid spec');

  // A controller that starts while the policy is invalid keeps its last valid spec too.
  await controller.stop();
  controller = await startController();
  await eventually(async () => assert.deepEqual(inForce(), [['cart-retries', '500ms']]), 15_000);
  const [afterRestart] = await acceptedOf('cart-retries');
  assert.match(afterRestart ?? '', /the last valid spec \(generation 1\) stays in force$/);

  // A newer policy on the same Service: the older one holds it.
  await create(
    POLICY.plural,
    {
      apiVersion: 'policy.causeway.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'cart-second' },
      spec: { targetRefs: [{ group: '', kind: 'Service', name: 'cart' }], retries: { attempts: 1 } },
    },
    POLICY.group,
    POLICY.version,
  );
  await eventually(async () => {
    const [condition] = await acceptedOf('cart-second');
    assert.match(
      condition ?? '',
      /^Service\/cart False\/Conflicted: TrafficPolicy shop\/cart-retries targets Service shop\/cart too and came first/,
    );
  }, 15_000);
  assert.deepEqual(inForce(), [['cart-retries', '500ms']]);
});

test('a Gateway of class causeway: listener and Gateway conditions, attached route counts, and route refusals by listener', async () => {
  await create('gateways', {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge' },
    spec: {
      gatewayClassName: 'causeway',
      listeners: [
        { name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } },
        { name: 'internal', port: 8080, protocol: 'HTTP', hostname: '*.internal.example.com' },
        { name: 'tls', port: 443, protocol: 'HTTPS' },
        { name: 'tcp', port: 80, protocol: 'TCP' },
      ],
    },
  });
  // Another class's Gateway: Causeway writes nothing to it or to its routes' status.
  await create('gateways', {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'foreign' },
    spec: { gatewayClassName: 'other', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  });
  const route = (name: string, parentRef: Record<string, unknown>, hostnames?: string[]) =>
    create('httproutes', {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name },
      spec: {
        parentRefs: [parentRef],
        ...(hostnames ? { hostnames } : {}),
        rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }],
      },
    });
  await route('edge-all', { name: 'edge' });
  await route('edge-internal', { name: 'edge', sectionName: 'internal' }, ['api.internal.example.com']);
  await route('edge-wrong-host', { name: 'edge', sectionName: 'internal' }, ['shop.example.org']);
  await route('edge-no-listener', { name: 'edge', sectionName: 'missing' });
  await route('foreign-only', { name: 'foreign' });
  type GatewayStatus = {
    status?: {
      conditions?: Array<{ type: string; status: string; reason: string }>;
      listeners?: Array<{
        name: string;
        attachedRoutes: number;
        supportedKinds: Array<{ kind: string }>;
        conditions: Array<{ type: string; status: string; reason: string }>;
      }>;
    };
  };
  const gatewayStatus = async (name: string) =>
    (await kubectlGet<GatewayStatus>(cluster, [`gateways.${GW.group}`, '-n', 'shop', name])).status;
  await eventually(async () => {
    const status = await gatewayStatus('edge');
    assert.deepEqual(
      status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`),
      ['Accepted=True/Accepted', 'Programmed=True/Programmed'],
    );
    const listeners = Object.fromEntries(
      (status?.listeners ?? []).map((l) => [
        l.name,
        [l.attachedRoutes, ...l.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)],
      ]),
    );
    assert.deepEqual(listeners, {
      // Port 80 has an HTTP and a TCP listener: both are in conflict, neither is served.
      http: [
        0,
        'Accepted=True/Accepted',
        'ResolvedRefs=True/ResolvedRefs',
        'Conflicted=True/ProtocolConflict',
        'Programmed=False/Invalid',
      ],
      // edge-internal, and edge-all (no sectionName: every served listener that takes it).
      internal: [
        2,
        'Accepted=True/Accepted',
        'ResolvedRefs=True/ResolvedRefs',
        'Conflicted=False/NoConflicts',
        'Programmed=True/Programmed',
      ],
      // An HTTPS listener without certificateRefs: accepted, but nothing to serve it with.
      tls: [
        0,
        'Accepted=True/Accepted',
        'ResolvedRefs=False/InvalidCertificateRef',
        'Conflicted=False/NoConflicts',
        'Programmed=False/Invalid',
      ],
      tcp: [
        0,
        'Accepted=False/UnsupportedProtocol',
        'ResolvedRefs=True/ResolvedRefs',
        'Conflicted=True/ProtocolConflict',
        'Programmed=False/Invalid',
      ],
    });
  }, 15_000);
  await eventually(async () => {
    assert.deepEqual(await statusOf('httproutes', 'edge-internal'), [
      ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
    assert.deepEqual(await statusOf('httproutes', 'edge-wrong-host'), [
      ['Accepted=False/NoMatchingListenerHostname', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
    assert.deepEqual(await statusOf('httproutes', 'edge-no-listener'), [
      ['Accepted=False/NoMatchingParent', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
    assert.deepEqual(await statusOf('httproutes', 'edge-all'), [
      ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs'],
    ]);
    assert.deepEqual(await statusOf('httproutes', 'foreign-only'), []);
  }, 15_000);
  assert.equal((await gatewayStatus('foreign')) ?? undefined, undefined);
  const edge = controller.gateways().find((g) => g.name === 'edge')!;
  assert.deepEqual(
    edge.listeners.map((l) => l.name),
    ['internal'],
  );
});
