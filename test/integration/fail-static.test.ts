// Fail static with real processes: two federation-controller processes (east, west), two
// real API servers, real NATS, and a proxy on west's discovery API. NATS restarts delete
// nothing and changes made meanwhile catch up; a silent cluster is marked stale, never
// removed; west's controller killed with SIGKILL and restarted while NATS is down still
// serves the last catalog to the proxy.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import { DiscoveryClient, type SnapshotMessage } from '@causeway/discovery';
import { TrustDirectory } from '@causeway/pki';
import { eventually, repoRoot, startEnvironment, type Environment } from '@causeway/testing';
import {
  controllerSettings,
  initTrust,
  startControllerProcess,
  workloadCredentials,
  writeYaml,
  type ControllerProcess,
} from '../support/controller-process.ts';

const run = promisify(execFile);
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const TD = 'mesh.test';
const TOKEN = 'fail-static-join-token-0123';
const SE = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports' } as const;
const SI = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceimports' } as const;

let env: Environment;
let dir: string;
const controllers = new Map<string, ControllerProcess>();
const kube = new Map<string, KubeConfig>();

async function settingsFile(cluster: string, index: number): Promise<string> {
  const base = controllerSettings({
    directory: new TrustDirectory(dir),
    cluster,
    trustDomain: TD,
    stateDir: path.join(dir, `state-${cluster}`),
    natsUrl: env.nats!.url,
    token: TOKEN,
  });
  return await writeYaml(path.join(dir, `${cluster}.yaml`), {
    ...base,
    signing: { ...(base.signing as object), workloadTtl: '1h' },
    statusInterval: '500ms',
    catalog: {
      kubeconfig: env.clusters[index]!.kubeconfigPath,
      gatewayAddresses: [`127.0.0.${index + 1}:15443`],
      heartbeatInterval: '300ms',
      staleAfter: '2s',
    },
  });
}

async function startController(cluster: string, index: number): Promise<ControllerProcess> {
  const controller = await startControllerProcess(await settingsFile(cluster, index));
  controllers.set(cluster, controller);
  return controller;
}

before(async () => {
  env = await startEnvironment({ clusterNames: ['east', 'west'], nats: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-fail-static-'));
  await initTrust(dir, TD, ['east', 'west'], env.nats!.url);
  for (const [index, cluster] of ['east', 'west'].entries()) {
    kube.set(cluster, env.clusters[index]!.kubeConfig());
    await startController(cluster, index);
  }
});

after(async () => {
  for (const controller of controllers.values()) await controller.stop();
  await env?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function exportCart(ports: Array<{ name: string; port: number }>): Promise<void> {
  const config = kube.get('east')!;
  const core = config.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'shop' } } }).catch(() => {});
  const spec = { ports: ports.map((p) => ({ ...p, protocol: 'TCP' })), selector: { app: 'cart' } };
  try {
    const current = await core.readNamespacedService({ name: 'cart', namespace: 'shop' });
    await core.replaceNamespacedService({
      name: 'cart',
      namespace: 'shop',
      body: { ...current, spec: { ...current.spec, ports: spec.ports } },
    });
  } catch {
    await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'cart' }, spec } });
    await config.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
      namespace: 'shop',
      body: {
        metadata: { name: 'cart-1', labels: { 'kubernetes.io/service-name': 'cart' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.1.0.7'], conditions: { ready: true } }],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
    });
    await config.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      ...SE,
      namespace: 'shop',
      body: { apiVersion: `${SE.group}/${SE.version}`, kind: 'ServiceExport', metadata: { name: 'cart' } },
    });
  }
}

type Condition = { type: string; status: string; reason: string; message: string };
type ImportObject = {
  spec: { ports: Array<{ port: number }> };
  status?: { clusters?: Array<{ cluster: string }>; conditions?: Condition[] };
};

const readImport = async (cluster: string): Promise<ImportObject> =>
  (await kube
    .get(cluster)!
    .makeApiClient(CustomObjectsApi)
    .getNamespacedCustomObject({ ...SI, namespace: 'shop', name: 'cart' })) as ImportObject;

const conditionOf = (conditions: Condition[] | undefined, type: string): Condition | undefined =>
  conditions?.find((c) => c.type === type);

const metric = async (controller: ControllerProcess, pattern: RegExp): Promise<string | undefined> =>
  pattern.exec(await (await fetch(`${controller.adminUrl}/metrics`)).text())?.[1];

/** A mesh certificate for shop/web in west, from west's signing service. */
async function webCredentials(signingUrl: string) {
  const root = await new TrustDirectory(dir).activeRoot();
  return workloadCredentials({
    signingUrl,
    rootPem: root.certificatePem,
    trustDomain: TD,
    cluster: 'west',
    namespace: 'shop',
    serviceAccount: 'web',
    token: TOKEN,
  });
}

test('an export reaches a proxy in another cluster; NATS restarts and a controller SIGKILL delete nothing', async () => {
  await exportCart([{ name: 'http', port: 80 }]);
  const east = controllers.get('east')!;

  // The ServiceExport in east: Valid, Ready (published), no conflict.
  await eventually(async () => {
    const se = (await kube
      .get('east')!
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...SE, namespace: 'shop', name: 'cart' })) as {
      status?: { conditions?: Condition[] };
    };
    const conditions = se.status?.conditions;
    assert.equal(conditionOf(conditions, 'Valid')?.status, 'True');
    assert.equal(conditionOf(conditions, 'Ready')?.reason, 'Exported');
    assert.equal(conditionOf(conditions, 'Ready')?.status, 'True');
    assert.equal(conditionOf(conditions, 'Conflict')?.reason, 'NoConflicts');
  }, 30_000);
  // The ServiceImport is created, then its status is written: wait for both.
  const imported = await eventually(async () => {
    const si = await readImport('west');
    assert.deepEqual(si.status?.clusters, [{ cluster: 'east' }]);
    return si;
  }, 30_000);
  assert.equal(conditionOf(imported.status?.conditions, 'Ready')?.status, 'True');
  assert.equal(conditionOf(imported.status?.conditions, 'causeway.dev/Stale')?.status, 'False');

  // A sidecar in west, on west's discovery API with its mesh certificate.
  const west = controllers.get('west')!;
  const credentials = await webCredentials(west.signingUrl);
  const received: SnapshotMessage[] = [];
  let controllerUrl = west.signingUrl;
  const proxy = new DiscoveryClient({
    get controllerUrl() {
      return controllerUrl;
    },
    trustDomain: TD,
    cluster: 'west',
    proxy: 'sidecar~shop~web-0',
    kind: 'sidecar',
    credentials: () => credentials,
    onConfig: (message) => {
      received.push(message);
    },
  });
  await proxy.start();
  try {
    const cartIn = (message: SnapshotMessage | undefined) =>
      message?.config.services.find((s) => s.namespace === 'shop' && s.name === 'cart');
    const first = await eventually(async () => {
      const cart = cartIn(proxy.current());
      assert.ok(cart, 'the proxy has no shop/cart yet');
      return cart;
    }, 30_000);
    assert.equal(first.hostname, 'cart.shop.svc.clusterset.local');
    assert.deepEqual(
      first.backends.map((b) => [b.kind, b.cluster]),
      [['remote', 'east']],
    );
    const backend = first.backends[0]!;
    assert.deepEqual(backend.kind === 'remote' && backend.gatewayAddresses, ['127.0.0.1:15443']);

    // The controller shows what the proxy acknowledged.
    const debug = await eventually(async () => {
      const page = (await (await fetch(`${west.adminUrl}/debug/config?proxy=sidecar~shop~web-0`)).json()) as {
        ackedVersion?: number;
        spiffeId: string;
        ackedConfig: { services: Array<{ name: string; scope?: string }> } | null;
      };
      assert.equal(page.ackedVersion, proxy.current()!.version);
      return page;
    }, 10_000);
    assert.equal(debug.spiffeId, `spiffe://${TD}/ns/shop/sa/web`);
    // The clusterset (west's own Services would come by cluster-local names only; the API
    // server's `kubernetes` has no mesh workload behind it and is left out).
    assert.deepEqual(
      debug.ackedConfig?.services.map((s) => `${s.name}${s.scope ? ` (${s.scope})` : ''}`),
      ['cart'],
    );
    assert.equal((await fetch(`${west.adminUrl}/debug/config?proxy=nobody`)).status, 404);

    // The operator's view: `causeway status` over both controllers, `causeway explain`.
    const statusJson = JSON.parse(
      (
        await run(process.execPath, [
          cli,
          'status',
          '--controller',
          west.adminUrl,
          '--controller',
          east.adminUrl,
          '--json',
        ])
      ).stdout,
    ) as Array<{
      cluster: string;
      peers: Array<{ cluster: string; stale: boolean }>;
      exports: Array<{ name: string; published: boolean; revision: number }>;
      proxies: Array<{ proxy: string; connected: boolean }>;
    }>;
    assert.deepEqual(
      statusJson.map((s) => s.cluster),
      ['west', 'east'],
    );
    assert.deepEqual(
      statusJson[0]!.peers.map((p) => [p.cluster, p.stale]),
      [
        ['east', false],
        ['west', false],
      ],
    );
    assert.deepEqual(statusJson[1]!.exports, [
      {
        namespace: 'shop',
        name: 'cart',
        revision: statusJson[1]!.exports[0]!.revision,
        published: true,
        tombstone: false,
        readyEndpoints: 1,
      },
    ]);
    assert.deepEqual(
      statusJson[0]!.proxies.map((p) => [p.proxy, p.connected]),
      [['sidecar~shop~web-0', true]],
    );
    const table = (await run(process.execPath, [cli, 'status', '--controller', west.adminUrl])).stdout;
    assert.match(
      table,
      /^Cluster west .* NATS connected, catalog running, 1 proxies connected, 1 on the latest config/,
    );
    assert.match(table, /shop\/cart\s+ClusterSetIP\s+80\/TCP \(http\)\s+east\s+-/);
    const explained = (
      await run(process.execPath, [cli, 'explain', 'cart.shop', '--controller', west.adminUrl])
    ).stdout;
    assert.match(explained, /^cart\.shop\.svc\.clusterset\.local \(ClusterSetIP\), seen from cluster west/);
    assert.match(
      explained,
      /east\s+east-west gateway 127\.0\.0\.1:15443\s+1 ready\s+exported there; heartbeat current/,
    );
    assert.match(
      explained,
      /sidecar~shop~web-0\s+sidecar\s+spiffe:\/\/mesh\.test\/ns\/shop\/sa\/web\s+\d+\s+yes/,
    );
    const unknown = await run(process.execPath, [
      cli,
      'explain',
      'nope.shop',
      '--controller',
      west.adminUrl,
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /nope\.shop is not in cluster west's clusterset catalog \(it has: cart\.shop\)/,
    );

    // NATS goes away. East changes its export meanwhile; west keeps everything and, once
    // east's heartbeat is older than staleAfter, says east is stale.
    await env.nats!.stop();
    await exportCart([
      { name: 'http', port: 80 },
      { name: 'admin', port: 9090 },
    ]);
    await eventually(async () => {
      const stale = conditionOf((await readImport('west')).status?.conditions, 'causeway.dev/Stale');
      assert.equal(stale?.status, 'True');
      assert.match(stale!.message, /east: no heartbeat since .* \(endpoints kept\)/);
    }, 30_000);
    assert.equal(await metric(west, /causeway_catalog_peer_stale\{[^}]*cluster="east"[^}]*\} (\d)/), '1');
    assert.deepEqual((await readImport('west')).status?.clusters, [{ cluster: 'east' }]);
    assert.ok(cartIn(proxy.current()), 'the proxy lost shop/cart while NATS was down');
    const staleBackend = cartIn(proxy.current())!.backends[0]!;
    assert.equal(staleBackend.kind === 'remote' && staleBackend.stale, true);

    // NATS is back (same store): the change made meanwhile arrives, staleness clears.
    await env.nats!.restart();
    await eventually(async () => {
      const si = await readImport('west');
      assert.deepEqual(
        si.spec.ports.map((p) => p.port),
        [80, 9090],
      );
      assert.equal(conditionOf(si.status?.conditions, 'causeway.dev/Stale')?.status, 'False');
    }, 60_000);
    await eventually(async () => {
      assert.deepEqual(
        cartIn(proxy.current())!.ports.map((p) => p.port),
        [80, 9090],
      );
    }, 10_000);

    // West's controller is killed outright, NATS is down, and west comes back: it serves
    // the persisted catalog to the proxy, which reconnects by itself.
    const versionBefore = proxy.current()!.version;
    assert.equal(await west.stop('SIGKILL'), null);
    await env.nats!.stop();
    const restarted = await startController('west', 1);
    controllerUrl = restarted.signingUrl;
    await restarted.waitForLog('restored the last-known-good catalog');
    await eventually(async () => {
      const message = proxy.current()!;
      assert.ok(message.version > versionBefore, 'no snapshot from the restarted controller yet');
      assert.deepEqual(
        cartIn(message)!.ports.map((p) => p.port),
        [80, 9090],
      );
    }, 30_000);
    assert.deepEqual((await readImport('west')).status?.clusters, [{ cluster: 'east' }]);
    assert.ok(east.child.exitCode === null, 'east must still be running');
    await env.nats!.restart();
  } finally {
    await proxy.stop();
  }
});

test('a Kubernetes-mode controller refuses a workload registration: endpoints come from its API server', async () => {
  const west = controllers.get('west')!;
  const credentials = await webCredentials(west.signingUrl);
  const refusals: string[] = [];
  const proxy = new DiscoveryClient({
    controllerUrl: west.signingUrl,
    trustDomain: TD,
    cluster: 'west',
    proxy: 'sidecar~shop~web-1',
    kind: 'sidecar',
    workload: { name: 'web-1', labels: { app: 'web' }, address: '127.0.0.1', ports: [{ port: 8080 }] },
    credentials: () => credentials,
    onConfig: () => {},
    onError: (error) => refusals.push(error.message),
  });
  await proxy.start();
  try {
    await eventually(async () => assert.ok(refusals.length > 0, 'the registration was not refused'));
    assert.match(refusals[0]!, /\(400\).*CAUSEWAY_DISCOVERY_WORKLOAD_NOT_ACCEPTED/);
    assert.equal(proxy.current(), undefined);
  } finally {
    await proxy.stop();
  }
});
