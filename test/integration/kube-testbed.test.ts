// The Kubernetes part of the test bed is real: two independent kube-apiserver + etcd
// pairs with the project's CRDs, exercised through @kubernetes/client-node and kubectl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Watch,
  type KubeConfig,
} from '@kubernetes/client-node';
import { eventually, findOnPath, startEnvironment, type Environment } from '@causeway/testing';

const run = promisify(execFile);
const MCS = { group: 'multicluster.x-k8s.io', version: 'v1alpha1' } as const;

/** A custom object as the API server returns it. */
interface CustomObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: Record<string, unknown> & {
    rules?: Array<{ matches?: unknown; backendRefs?: Array<{ weight?: number }> }>;
  };
  status?: { conditions?: Array<Record<string, string>> };
}

let env: Environment;
let east: KubeConfig;
let west: KubeConfig;
let namespaceCounter = 0;

async function freshNamespace(config: KubeConfig): Promise<string> {
  const name = `t${process.pid}-${++namespaceCounter}`;
  await config.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

function service(name: string, namespace: string) {
  return {
    metadata: { name, namespace },
    spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }], selector: { app: name } },
  };
}

async function statusOf(error: unknown, what = 'request'): Promise<{ code: number; message: string }> {
  assert.ok(error instanceof ApiException, `${what}: expected an API error, got ${String(error)}`);
  const body = typeof error.body === 'string' ? JSON.parse(error.body) : error.body;
  return { code: error.code, message: String(body?.message ?? '') };
}

before(async () => {
  env = await startEnvironment({ clusterNames: ['east', 'west'] });
  east = env.clusters[0]!.kubeConfig();
  west = env.clusters[1]!.kubeConfig();
});

after(async () => {
  await env?.dispose();
});

describe('kube test bed', () => {
  test('each cluster has its own service CIDR and allocates ClusterIPs from it', async () => {
    const [eastNs, westNs] = await Promise.all([freshNamespace(east), freshNamespace(west)]);
    const eastSvc = await east
      .makeApiClient(CoreV1Api)
      .createNamespacedService({ namespace: eastNs, body: service('web', eastNs) });
    const westSvc = await west
      .makeApiClient(CoreV1Api)
      .createNamespacedService({ namespace: westNs, body: service('web', westNs) });
    assert.match(eastSvc.spec?.clusterIP ?? '', /^10\.96\./);
    assert.match(westSvc.spec?.clusterIP ?? '', /^10\.97\./);
  });

  test('a Service and ServiceExport created in east are seen through a watch', async () => {
    const namespace = await freshNamespace(east);
    const seen: string[] = [];
    let resolveSeen!: () => void;
    const bothSeen = new Promise<void>((resolve) => (resolveSeen = resolve));
    const watch = new Watch(east);
    const controllers = await Promise.all([
      watch.watch(
        `/api/v1/namespaces/${namespace}/services`,
        {},
        (phase, object) => {
          seen.push(`${phase} Service ${object.metadata.name}`);
          if (seen.length >= 2) resolveSeen();
        },
        () => {},
      ),
      watch.watch(
        `/apis/${MCS.group}/${MCS.version}/namespaces/${namespace}/serviceexports`,
        {},
        (phase, object) => {
          seen.push(`${phase} ServiceExport ${object.metadata.name}`);
          if (seen.length >= 2) resolveSeen();
        },
        () => {},
      ),
    ]);
    try {
      await east
        .makeApiClient(CoreV1Api)
        .createNamespacedService({ namespace, body: service('checkout', namespace) });
      await east.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
        ...MCS,
        namespace,
        plural: 'serviceexports',
        body: {
          apiVersion: `${MCS.group}/${MCS.version}`,
          kind: 'ServiceExport',
          metadata: { name: 'checkout', namespace },
        },
      });
      await Promise.race([
        bothSeen,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`watch saw only: ${seen.join(', ')}`)), 10_000),
        ),
      ]);
      assert.deepEqual(seen.sort(), ['ADDED Service checkout', 'ADDED ServiceExport checkout']);
    } finally {
      for (const controller of controllers) controller.abort();
    }
  });

  test('ServiceExport conditions are written through the status subresource only', async () => {
    const namespace = await freshNamespace(east);
    const custom = east.makeApiClient(CustomObjectsApi);
    const target = { ...MCS, namespace, plural: 'serviceexports', name: 'payments' };
    const created = (await custom.createNamespacedCustomObject({
      ...MCS,
      namespace,
      plural: 'serviceexports',
      body: {
        apiVersion: `${MCS.group}/${MCS.version}`,
        kind: 'ServiceExport',
        metadata: { name: 'payments', namespace },
      },
    })) as CustomObject;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const conditions = [
      { type: 'Valid', status: 'True', reason: 'Valid', message: 'Service found', lastTransitionTime: now },
      {
        type: 'Ready',
        status: 'False',
        reason: 'Pending',
        message: 'not yet synced',
        lastTransitionTime: now,
      },
    ];
    // A status written through the main resource is dropped by the API server...
    await custom.replaceNamespacedCustomObject({ ...target, body: { ...created, status: { conditions } } });
    const afterMain = (await custom.getNamespacedCustomObject(target)) as CustomObject;
    assert.equal(afterMain.status, undefined);
    // ...and kept when written through /status.
    await custom.replaceNamespacedCustomObjectStatus({
      ...target,
      body: { ...afterMain, status: { conditions } },
    });
    const afterStatus = (await custom.getNamespacedCustomObject(target)) as CustomObject;
    assert.deepEqual(
      afterStatus.status!.conditions!.map((c) => `${c.type}=${c.status}/${c.reason}`),
      ['Valid=True/Valid', 'Ready=False/Pending'],
    );
  });

  test('objects that violate the CRD schemas are rejected, naming the field', async () => {
    const namespace = await freshNamespace(east);
    const custom = east.makeApiClient(CustomObjectsApi);
    const cases = [
      {
        what: 'ServiceImport with an unknown type',
        group: MCS.group,
        version: 'v1alpha1',
        plural: 'serviceimports',
        body: {
          kind: 'ServiceImport',
          metadata: { name: 'a' },
          spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
        },
        field: 'spec.type',
      },
      {
        what: 'ServiceImport port out of range',
        group: MCS.group,
        version: 'v1alpha1',
        plural: 'serviceimports',
        body: {
          kind: 'ServiceImport',
          metadata: { name: 'b' },
          spec: { type: 'ClusterSetIP', ports: [{ port: 70000 }] },
        },
        field: 'spec.ports[0].port',
      },
      {
        what: 'HTTPRoute with an unknown path match type',
        group: 'gateway.networking.k8s.io',
        version: 'v1',
        plural: 'httproutes',
        body: {
          kind: 'HTTPRoute',
          metadata: { name: 'c' },
          spec: { rules: [{ matches: [{ path: { type: 'Glob', value: '/x' } }] }] },
        },
        field: 'spec.rules[0].matches[0].path.type',
      },
      {
        what: 'HTTPRoute backend weight above the maximum',
        group: 'gateway.networking.k8s.io',
        version: 'v1',
        plural: 'httproutes',
        body: {
          kind: 'HTTPRoute',
          metadata: { name: 'd' },
          spec: { rules: [{ backendRefs: [{ name: 'web', port: 80, weight: 2_000_000 }] }] },
        },
        field: 'spec.rules[0].backendRefs[0].weight',
      },
      {
        what: 'AuthorizationPolicy without an action',
        group: 'policy.causeway.dev',
        version: 'v1alpha1',
        plural: 'authorizationpolicies',
        body: {
          kind: 'AuthorizationPolicy',
          metadata: { name: 'e' },
          spec: { targetRefs: [{ group: '', kind: 'Service', name: 'web' }] },
        },
        field: 'spec.action',
      },
      {
        what: 'TrafficPolicy with a malformed duration',
        group: 'policy.causeway.dev',
        version: 'v1alpha1',
        plural: 'trafficpolicies',
        body: {
          kind: 'TrafficPolicy',
          metadata: { name: 'f' },
          spec: {
            targetRefs: [{ group: '', kind: 'Service', name: 'web' }],
            timeouts: { request: '5 seconds' },
          },
        },
        field: 'spec.timeouts.request',
      },
    ];
    for (const c of cases) {
      const body = { apiVersion: `${c.group}/${c.version}`, ...c.body };
      const error = await custom
        .createNamespacedCustomObject({
          group: c.group,
          version: c.version,
          namespace,
          plural: c.plural,
          body,
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      const status = await statusOf(error, c.what);
      assert.equal(status.code, 422, `${c.what}: expected 422, got ${status.code}`);
      assert.ok(
        status.message.includes(c.field),
        `${c.what}: message does not name ${c.field}: ${status.message}`,
      );
    }
    const listed = (await custom.listNamespacedCustomObject({
      ...MCS,
      namespace,
      plural: 'serviceimports',
    })) as { items: unknown[] };
    assert.equal(listed.items.length, 0);
  });

  test('a valid HTTPRoute gets the Gateway API defaults', async () => {
    const namespace = await freshNamespace(east);
    const custom = east.makeApiClient(CustomObjectsApi);
    const route = (await custom.createNamespacedCustomObject({
      group: 'gateway.networking.k8s.io',
      version: 'v1',
      namespace,
      plural: 'httproutes',
      body: {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'web' },
        spec: {
          rules: [
            {
              backendRefs: [{ group: 'multicluster.x-k8s.io', kind: 'ServiceImport', name: 'web', port: 80 }],
            },
          ],
        },
      },
    })) as CustomObject;
    assert.deepEqual(route.spec!.rules![0]!.matches, [{ path: { type: 'PathPrefix', value: '/' } }]);
    assert.equal(route.spec!.rules![0]!.backendRefs![0]!.weight, 1);
  });

  test('an object created in east is absent from west', async () => {
    const namespace = await freshNamespace(east);
    await east
      .makeApiClient(CoreV1Api)
      .createNamespacedService({ namespace, body: service('only-east', namespace) });
    await eventually(async () => {
      const found = await east
        .makeApiClient(CoreV1Api)
        .readNamespacedService({ name: 'only-east', namespace });
      assert.equal(found.metadata?.name, 'only-east');
    });
    const error = await west
      .makeApiClient(CoreV1Api)
      .readNamespace({ name: namespace })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.equal((await statusOf(error)).code, 404);
  });

  test('TokenReview accepts a token the API server issued and names its service account', async () => {
    const namespace = await freshNamespace(east);
    const core = east.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'frontend' } } });
    const token = await core.createNamespacedServiceAccountToken({
      name: 'frontend',
      namespace,
      body: { spec: { audiences: ['causeway'], expirationSeconds: 600 } },
    });
    const review = await east.makeApiClient(AuthenticationV1Api).createTokenReview({
      body: { spec: { token: token.status!.token!, audiences: ['causeway'] } },
    });
    assert.equal(review.status?.authenticated, true);
    assert.equal(review.status?.user?.username, `system:serviceaccount:${namespace}:frontend`);
    const forged = await east.makeApiClient(AuthenticationV1Api).createTokenReview({
      body: { spec: { token: token.status!.token!.slice(0, -4) + 'AAAA', audiences: ['causeway'] } },
    });
    assert.notEqual(forged.status?.authenticated, true);
  });

  const kubectl = findOnPath('kubectl');
  test(
    'kubectl reads ServiceExports with the printed kubeconfig',
    { skip: kubectl ? false : 'kubectl is not installed' },
    async () => {
      const namespace = await freshNamespace(west);
      await west.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
        ...MCS,
        namespace,
        plural: 'serviceexports',
        body: {
          apiVersion: `${MCS.group}/${MCS.version}`,
          kind: 'ServiceExport',
          metadata: { name: 'ledger', namespace },
        },
      });
      const { stdout } = await run(kubectl!, [
        '--kubeconfig',
        env.clusters[1]!.kubeconfigPath,
        'get',
        'serviceexports',
        '-A',
      ]);
      assert.match(stdout, /NAMESPACE\s+NAME\s+VALID\s+READY\s+CONFLICT\s+AGE/);
      assert.match(stdout, new RegExp(`${namespace}\\s+ledger`));
    },
  );
});
