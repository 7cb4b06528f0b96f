// File mode with real processes: two federation-controller processes (east, west) that
// read their objects from folders of YAML, real NATS, and sidecars on the discovery API.
// Endpoints come from sidecars registering their workloads; a malformed object gets
// Valid=False with the file and field, and the controller keeps running.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import {
  DiscoveryClient,
  type ControllerStatus,
  type SnapshotMessage,
  type Workload,
} from '@causeway/discovery';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, headers } from '@nats-io/transport-node';
import {
  CATALOG_BUCKET,
  CatalogSync,
  exportKey,
  MAX_WAITING_PER_CLUSTER,
  signerKey,
} from '@causeway/catalog';
import { CatalogBus } from '@causeway/nats';
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
const TOKEN = 'file-mode-join-token-0123456';
const CLUSTERS = ['east', 'west'] as const;

let env: Environment;
let dir: string;
const controllers = new Map<string, ControllerProcess>();
const proxies: DiscoveryClient[] = [];
/** `cluster/account` -> the mesh credentials a sidecar was given. */
const credentialsOf = new Map<string, Awaited<ReturnType<typeof workloadCredentials>>>();

const manifests = (cluster: string) => path.join(dir, `manifests-${cluster}`);

const CART = `apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
spec:
  selector: { app: cart }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: { name: cart, namespace: shop }
`;

const till = (exportSpec: string) => `apiVersion: v1
kind: Service
metadata: { name: till, namespace: shop }
spec:
  selector: { app: till }
  ports: [{ name: grpc, port: 9000 }]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: { name: till, namespace: shop }
${exportSpec}`;

before(async () => {
  env = await startEnvironment({ nats: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-file-mode-'));
  await initTrust(dir, TD, CLUSTERS, env.nats!.url);
  // The catalog bucket made by hand, as older releases made it (rollups and purges allowed):
  // the wipe test needs them. Buckets the controllers create refuse them.
  const setup = await connect({ servers: env.nats!.url });
  await new Kvm(setup).create(CATALOG_BUCKET, { history: 5 });
  await setup.close();
  for (const [index, cluster] of CLUSTERS.entries()) {
    await mkdir(manifests(cluster));
    const settings = await writeYaml(path.join(dir, `${cluster}.yaml`), {
      ...controllerSettings({
        directory: new TrustDirectory(dir),
        cluster,
        trustDomain: TD,
        stateDir: path.join(dir, `state-${cluster}`),
        natsUrl: env.nats!.url,
        token: TOKEN,
      }),
      catalog: {
        directory: manifests(cluster),
        gatewayAddresses: [`127.0.0.${index + 1}:15443`],
        heartbeatInterval: '300ms',
        staleAfter: '3s',
        workloadGrace: '1s',
      },
    });
    controllers.set(cluster, await startControllerProcess(settings));
  }
  await writeFile(path.join(manifests('east'), 'cart.yaml'), CART);
});

after(async () => {
  for (const proxy of proxies) await proxy.stop();
  for (const controller of controllers.values()) await controller.stop();
  await env?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** A sidecar on a cluster's discovery API with a mesh certificate for `shop/<account>`. */
async function sidecar(cluster: string, account: string, workload?: Workload): Promise<DiscoveryClient> {
  const controller = controllers.get(cluster)!;
  const root = await new TrustDirectory(dir).activeRoot();
  const credentials = await workloadCredentials({
    signingUrl: controller.signingUrl,
    rootPem: root.certificatePem,
    trustDomain: TD,
    cluster,
    namespace: 'shop',
    serviceAccount: account,
    token: TOKEN,
  });
  credentialsOf.set(`${cluster}/${account}`, credentials);
  const proxy = new DiscoveryClient({
    controllerUrl: controller.signingUrl,
    trustDomain: TD,
    cluster,
    proxy: `sidecar~shop~${workload?.name ?? account}`,
    kind: 'sidecar',
    ...(workload ? { workload } : {}),
    credentials: () => credentials,
    onConfig: () => {},
  });
  await proxy.start();
  proxies.push(proxy);
  return proxy;
}

const serviceIn = (message: SnapshotMessage | undefined, name: string) =>
  message?.config.services.find((s) => s.namespace === 'shop' && s.name === name);

/** What a controller reports on its admin port (what `causeway status` reads). */
async function status(cluster: string): Promise<ControllerStatus> {
  const response = await fetch(`${controllers.get(cluster)!.adminUrl}/debug/catalog`);
  return (await response.json()) as ControllerStatus;
}

const conditionsOf = (state: ControllerStatus, name: string) =>
  Object.fromEntries(
    (state.serviceExports!.find((e) => e.namespace === 'shop' && e.name === name)?.conditions ?? []).map(
      (c) => [c.type, `${c.status}/${c.reason}`],
    ),
  );

const CART_0: Workload = {
  name: 'cart-0',
  labels: { app: 'cart', version: 'v1' },
  address: '127.0.0.1',
  ports: [{ name: 'http', port: 18080, appPort: 8080 }],
};

let cartSidecar: DiscoveryClient;
let westProxy: DiscoveryClient;

/** A proxy in east with cart's credentials, registering `workload` (not started yet). */
const cartAccountProxy = (
  proxy: string,
  workload: Workload,
  more: Partial<ConstructorParameters<typeof DiscoveryClient>[0]> = {},
): DiscoveryClient =>
  new DiscoveryClient({
    controllerUrl: controllers.get('east')!.signingUrl,
    trustDomain: TD,
    cluster: 'east',
    proxy,
    kind: 'sidecar',
    workload,
    credentials: () => credentialsOf.get('east/cart'),
    onConfig: () => {},
    ...more,
  });

test('a ServiceExport in a file is exported with the endpoints its sidecar registered, and west gets it', async () => {
  cartSidecar = await sidecar('east', 'cart', CART_0);
  const local = await eventually(async () => {
    const cart = serviceIn(cartSidecar.current(), 'cart');
    const backend = cart?.backends.find((b) => b.kind === 'local');
    // The endpoint (from the registration) and the serving identity (from the export
    // record) arrive in separate steps.
    assert.ok(
      backend?.kind === 'local' && backend.endpoints.length === 1 && backend.identities.length === 1,
      'no local endpoint with its identity for shop/cart yet',
    );
    return backend;
  }, 30_000);
  assert.deepEqual(local.endpoints, [
    { address: '127.0.0.1', ready: true, ports: [{ name: 'http', port: 18080, protocol: 'TCP' }] },
  ]);
  assert.deepEqual(local.identities, [`spiffe://${TD}/ns/shop/sa/cart`]);

  westProxy = await sidecar('west', 'web');
  const remote = await eventually(async () => {
    const backend = serviceIn(westProxy.current(), 'cart')?.backends.find((b) => b.cluster === 'east');
    assert.ok(
      backend?.kind === 'remote' && backend.readyEndpoints === 1,
      'west has no ready shop/cart in east',
    );
    return backend;
  }, 30_000);
  assert.deepEqual(remote.gatewayAddresses, ['127.0.0.1:15443']);
  assert.deepEqual(remote.identities, [`spiffe://${TD}/ns/shop/sa/cart`]);

  await eventually(async () =>
    assert.equal(conditionsOf(await status('east'), 'cart').Ready, 'True/Exported'),
  );
  const { stdout } = await run(process.execPath, [
    cli,
    'status',
    '--json',
    '--controller',
    controllers.get('east')!.adminUrl,
  ]);
  const east = (JSON.parse(stdout) as ControllerStatus[])[0]!;
  assert.equal(east.mode, 'files');
  assert.deepEqual(conditionsOf(east, 'cart'), {
    Valid: 'True/Valid',
    Ready: 'True/Exported',
    Conflict: 'False/NoConflicts',
  });
  assert.deepEqual(east.problems, []);

  // Another sidecar cannot take over a connected workload's name.
  const refusals: string[] = [];
  const impostor = cartAccountProxy(
    'sidecar~shop~impostor',
    { ...CART_0, address: '127.0.0.1' },
    { onError: (error) => refusals.push(error.message) },
  );
  await impostor.start();
  await eventually(async () => assert.ok(refusals.length > 0, 'the impostor was not refused'));
  await impostor.stop();
  assert.match(
    refusals[0]!,
    /\(409\).*CAUSEWAY_DISCOVERY_WORKLOAD_TAKEN.*shop\/cart-0 is already registered/,
  );

  // A sidecar registers only the address it connects from: gateways pass connections on to
  // these addresses, and must not be pointed at some other host.
  const elsewhere: string[] = [];
  const redirector = cartAccountProxy(
    'sidecar~shop~redirector',
    { ...CART_0, name: 'cart-9', address: '10.1.2.3' },
    { onError: (error) => elsewhere.push(error.message) },
  );
  await redirector.start();
  await eventually(async () => assert.ok(elsewhere.length > 0, 'a foreign address was accepted'));
  await redirector.stop();
  assert.match(elsewhere[0]!, /\(403\).*CAUSEWAY_DISCOVERY_ADDRESS_REFUSED.*10\.1\.2\.3.*127\.0\.0\.1/);
  const endpoints = serviceIn(cartSidecar.current(), 'cart')?.backends.find((b) => b.kind === 'local');
  assert.deepEqual(endpoints?.kind === 'local' && endpoints.endpoints.map((e) => e.address), ['127.0.0.1']);
});

test('a malformed object gets Valid=False naming the file and field; the controller keeps running', async () => {
  const broken = path.join(manifests('east'), 'till.yaml');
  await writeFile(broken, till('spec: { exportTo: everyone }\n'));
  await writeFile(path.join(manifests('east'), 'notes.yaml'), 'kind: [unclosed\n');
  const state = await eventually(async () => {
    const current = await status('east');
    assert.equal(conditionsOf(current, 'till').Valid, 'False/Malformed');
    assert.equal(current.problems!.length, 2);
    return current;
  });
  const valid = state
    .serviceExports!.find((e) => e.name === 'till')!
    .conditions.find((c) => c.type === 'Valid')!;
  assert.match(valid.message, /^till\.yaml:8: spec: Unrecognized key: "exportTo"/);
  assert.deepEqual(
    state.problems!.map((p) => [p.file, p.kind ?? '-', p.message.split(':')[0]]),
    [
      ['notes.yaml', '-', 'not valid YAML (line 2)'],
      ['till.yaml:8', 'ServiceExport', 'spec'],
    ],
  );
  assert.equal(conditionsOf(state, 'cart').Ready, 'True/Exported');
  assert.equal(serviceIn(westProxy.current(), 'till'), undefined);

  // A person sees the same through the CLI.
  const explained = await run(process.execPath, [
    cli,
    'explain',
    'till.shop',
    '--controller',
    controllers.get('east')!.adminUrl,
  ]);
  assert.match(explained.stdout, /not in the clusterset/);
  assert.match(explained.stdout, /Valid\s+False\s+Malformed/);

  // Fixed, it is exported and reaches west (with no endpoints: nothing registered for it).
  await writeFile(broken, till(''));
  await eventually(async () => {
    const current = await status('east');
    assert.equal(conditionsOf(current, 'till').Valid, 'True/Valid');
    assert.ok(serviceIn(westProxy.current(), 'till'), 'west has no shop/till yet');
  }, 30_000);
  assert.equal(controllers.get('east')!.child.exitCode, null);
});

test('a file that stops being YAML keeps its objects; deleting a file unexports them everywhere', async () => {
  const cartFile = path.join(manifests('east'), 'cart.yaml');
  await writeFile(cartFile, `${CART}\n  oops: [\n`);
  await eventually(async () => {
    const current = await status('east');
    assert.ok(
      current.problems!.some((p) => p.file === 'cart.yaml'),
      'cart.yaml is not reported yet',
    );
  });
  // Two heartbeats later, shop/cart is still exported and still in west.
  await new Promise((resolve) => setTimeout(resolve, 700));
  assert.equal(conditionsOf(await status('east'), 'cart').Ready, 'True/Exported');
  assert.ok(serviceIn(westProxy.current(), 'cart'));
  await writeFile(cartFile, CART);

  // An editor that truncates and then rewrites, or a save that deletes and recreates, never
  // unexports anything: the revision published for shop/cart stays the same.
  const revisionOf = async () => (await status('east')).exports.find((e) => e.name === 'cart')!;
  const before = await eventually(async () => {
    const record = await revisionOf();
    assert.equal(record.tombstone, false);
    return record;
  });
  await writeFile(cartFile, '');
  await new Promise((resolve) => setTimeout(resolve, 300));
  await rm(cartFile);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await writeFile(cartFile, CART);
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  assert.deepEqual(await revisionOf(), before);

  // A policy that turns malformed stays in force in its last valid version.
  const policyFile = path.join(manifests('east'), 'deny.yaml');
  const policy = (action: string) => `apiVersion: policy.causeway.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-web, namespace: shop }
spec:
  targetRefs: [{ group: "", kind: Service, name: cart }]
  action: ${action}
  rules: [{ from: [{ namespaces: [web] }] }]
`;
  await writeFile(policyFile, policy('DENY'));
  const deny = await eventually(async () => {
    const found = cartSidecar.current()?.config.policies.find((p) => p.name === 'deny-web');
    assert.ok(found, 'the policy is not in east proxy config yet');
    return found;
  });
  await writeFile(policyFile, policy('DENNY'));
  await eventually(async () => {
    const problem = (await status('east')).problems!.find((p) => p.name === 'deny-web');
    assert.ok(problem?.kept, 'the malformed policy is not reported as kept');
    assert.match(problem.message, /spec\.action.*\(the last valid version is kept\)/);
  });
  assert.deepEqual(
    cartSidecar.current()!.config.policies.find((p) => p.name === 'deny-web'),
    deny,
  );
  await rm(policyFile);

  await rm(path.join(manifests('east'), 'till.yaml'));
  await rm(path.join(manifests('east'), 'notes.yaml'));
  await eventually(async () => {
    assert.equal(serviceIn(westProxy.current(), 'till'), undefined, 'west still has shop/till');
    const current = await status('east');
    assert.deepEqual(current.problems, []);
    assert.equal(conditionsOf(current, 'till').Valid, undefined);
  }, 30_000);
  assert.ok(serviceIn(westProxy.current(), 'cart'), 'shop/cart went with shop/till');
});

test('when its sidecar goes away, a workload leaves the endpoints after the grace period', async () => {
  await cartSidecar.stop();
  const observer = await sidecar('east', 'observer');
  await eventually(async () => {
    const local = serviceIn(observer.current(), 'cart')?.backends.find((b) => b.kind === 'local');
    assert.ok(local?.kind === 'local' && local.endpoints.length === 0, 'east still lists cart-0');
    const remote = serviceIn(westProxy.current(), 'cart')?.backends.find((b) => b.cluster === 'east');
    assert.ok(remote?.kind === 'remote' && remote.readyEndpoints === 0, 'west still counts cart-0 as ready');
  }, 30_000);
});

test("a new sidecar's workload is ready only once its sidecar holds a config that lists it", async () => {
  // A sidecar serves only the listeners its config names: before that it refuses callers.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const applied: number[] = [];
  const cart1 = cartAccountProxy(
    'sidecar~shop~cart-1',
    { ...CART_0, name: 'cart-1', ports: [{ name: 'http', port: 18081, appPort: 8080 }] },
    {
      // Applying its configs takes until `release`: nothing is acknowledged before.
      onConfig: async (message) => {
        await held;
        applied.push(message.version);
      },
    },
  );
  await cart1.start();
  try {
    const watcher = await sidecar('east', 'watcher');
    const cartEndpoints = () => {
      const local = serviceIn(watcher.current(), 'cart')?.backends.find((b) => b.kind === 'local');
      return local?.kind === 'local' ? local.endpoints : [];
    };
    await eventually(async () =>
      assert.deepEqual(
        cartEndpoints().map((e) => [e.ports[0]!.port, e.ready]),
        [[18081, false]],
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.deepEqual(
      cartEndpoints().map((e) => e.ready),
      [false],
      'ready before its sidecar acknowledged a config',
    );
    const remote = serviceIn(westProxy.current(), 'cart')?.backends.find((b) => b.cluster === 'east');
    assert.ok(remote?.kind === 'remote' && remote.readyEndpoints === 0, 'west counts cart-1 as ready');
    release();
    await eventually(async () => {
      assert.deepEqual(
        cartEndpoints().map((e) => e.ready),
        [true],
      );
      const back = serviceIn(westProxy.current(), 'cart')?.backends.find((b) => b.cluster === 'east');
      assert.ok(back?.kind === 'remote' && back.readyEndpoints === 1, 'west does not count cart-1 yet');
    });
    assert.ok(applied.length > 0);
  } finally {
    release();
    await cart1.stop();
  }
});

test("a record whose cluster's signer is unknown waits, and the controllers count and show it", async () => {
  const connection = await connect({ servers: env.nats!.url });
  try {
    const bus = await CatalogBus.open(connection);
    const record = {
      cluster: 'ghost',
      namespace: 'shop',
      name: 'phantom',
      type: 'ClusterSetIP',
      sessionAffinity: 'None',
      exportCreatedAt: '2026-11-01T10:00:00Z',
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
      revision: 1,
      gatewayAddresses: ['127.0.0.9:15443'],
      readyEndpoints: 1,
      identities: [`spiffe://${TD}/ns/shop/sa/phantom`],
    };
    await bus.putRaw(
      exportKey('ghost', 'shop', 'phantom'),
      JSON.stringify({ record, signer: 'f'.repeat(64), signature: 'c2lnbmF0dXJl' }),
    );
    for (const cluster of CLUSTERS)
      await eventually(async () => {
        assert.deepEqual((await status(cluster)).waitingForSigner, { ghost: 1 });
        assert.equal(serviceIn(westProxy.current(), 'phantom'), undefined);
      }, 10_000);
    const { stdout } = await run(process.execPath, [
      cli,
      'status',
      '--controller',
      controllers.get('west')!.adminUrl,
    ]);
    assert.match(stdout, /Waiting for their cluster's signer: ghost 1/);

    // A flood under that name: the list stops at its bound, the rest is refused and counted...
    const flood = Array.from({ length: MAX_WAITING_PER_CLUSTER + 4 }, (_, i) => `flood-${i}`);
    const text = (name: string) =>
      JSON.stringify({ record: { ...record, name }, signer: 'f'.repeat(64), signature: 'c2lnbmF0dXJl' });
    for (let i = 0; i < flood.length; i += 500)
      await Promise.all(
        flood.slice(i, i + 500).map((name) => bus.putRaw(exportKey('ghost', 'shop', name), text(name))),
      );
    for (const cluster of CLUSTERS)
      await eventually(async () => {
        const now = await status(cluster);
        assert.deepEqual(now.waitingForSigner, { ghost: MAX_WAITING_PER_CLUSTER });
        assert.equal(now.refusals.waiting_full, 5);
      }, 30_000);
    // ...and deleted keys no longer wait.
    const kv = await new Kvm(connection).open(CATALOG_BUCKET);
    const ghosts = ['phantom', ...flood];
    for (let i = 0; i < ghosts.length; i += 500)
      await Promise.all(ghosts.slice(i, i + 500).map((name) => kv.delete(exportKey('ghost', 'shop', name))));
    for (const cluster of CLUSTERS)
      await eventually(async () => assert.deepEqual((await status(cluster)).waitingForSigner, {}), 30_000);
  } finally {
    await connection.close();
  }
});

test('a wiped catalog comes back: deleted, purged and rolled-up keys are published again, and a newcomer sees it all', async () => {
  const connection = await connect({ servers: env.nats!.url });
  try {
    const kv = await new Kvm(connection).open(CATALOG_BUCKET);
    const bus = await CatalogBus.open(connection);
    const cart = exportKey('east', 'shop', 'cart');
    /** East's signer and cart are in the bucket, put there after the message numbered `after`. */
    const eastKeysBack = (after: number) => async (): Promise<void> => {
      for (const key of [signerKey('east'), cart]) {
        const entry = await kv.get(key);
        assert.equal(entry?.operation, 'PUT', `${key} is not back`);
        assert.ok(entry.revision > after, `${key} is the old one (${entry.revision} <= ${after})`);
      }
    };
    await eastKeysBack(0)();
    // Left alone, nothing is put again: a repair period (10 s, ±20%) later, the same revisions.
    const revisions = async () =>
      Promise.all([signerKey('east'), cart].map(async (key) => (await kv.get(key))?.revision));
    const settled = await revisions();
    await new Promise((resolve) => setTimeout(resolve, 12_500));
    assert.deepEqual(await revisions(), settled, 'the controller re-published what had not changed');
    // This bucket was made before the controllers started, by hand, as older releases made
    // it: purges and rollups are allowed (the controllers warn). Everything is repaired.
    const rollup = headers();
    rollup.set('Nats-Rollup', 'all');
    // Deleted and purged: put back at once (the controller watches its own keys).
    await kv.delete(cart);
    const purged = await kv
      .purge(signerKey('east'))
      .then(async () => (await kv.status()).streamInfo.state.last_seq);
    await eventually(eastKeysBack(purged), 5_000);
    // A rollup of the whole bucket leaves one message and no markers: the stream's first
    // sequence moves past east's puts, which is noticed (checked every 2 s, ±20%) and
    // repaired at once, however many heartbeats were put since.
    const ack = await jetstream(connection).publish(`$KV.${CATALOG_BUCKET}.junk`, 'x', { headers: rollup });
    await eventually(eastKeysBack(ack.seq), 6_000);
    // A controller that starts reading now gets east's cart, verified.
    const root = await new TrustDirectory(dir).activeRoot();
    const newcomer = new CatalogSync({
      trustDomain: TD,
      roots: () => [new X509Certificate(root.certificatePem)],
      onCatalog: () => {},
    });
    await newcomer.attach(bus);
    try {
      await eventually(async () => {
        const live = newcomer.state
          .live()
          .map((record) => `${record.cluster}/${record.namespace}/${record.name}`);
        assert.ok(live.includes('east/shop/cart'), live.join(' '));
      }, 10_000);
    } finally {
      newcomer.detach();
    }
  } finally {
    await connection.close();
  }
});

test('with NATS stopped the controllers say so within 5 s (status, condition, metric), and recover when it is back; a hung NATS is found out too', async () => {
  const metric = async (cluster: string) =>
    /^causeway_nats_connected (\d)/m.exec(
      await (await fetch(`${controllers.get(cluster)!.adminUrl}/metrics`)).text(),
    )?.[1];
  /** What a controller says of NATS: its status flag, the condition's reason, and the metric. */
  const natsIs = async (cluster: string, connected: boolean, reason: string, message?: RegExp) => {
    const current = await status(cluster);
    assert.equal(
      current.natsConnected,
      connected,
      connected ? `${cluster} did not reconnect` : `${cluster} still says NATS is connected`,
    );
    assert.equal(current.nats?.reason, reason);
    if (message) assert.match(current.nats!.message, message);
    assert.equal(await metric(cluster), connected ? '1' : '0');
  };
  /** Every controller says it within `ms`. */
  const everywhere = (ms: number, ...expected: [boolean, string, RegExp?]) =>
    Promise.all(CLUSTERS.map((cluster) => eventually(() => natsIs(cluster, ...expected), ms)));
  for (const cluster of CLUSTERS) await natsIs(cluster, true, 'Connected');
  await env.nats!.stop();
  const stopped = Date.now();
  try {
    await everywhere(5_000, false, 'Disconnected', /lost the connection to .*; reconnecting/);
    assert.ok(Date.now() - stopped < 5_000, `took ${Date.now() - stopped} ms`);
    const { stdout } = await run(process.execPath, [
      cli,
      'status',
      '--controller',
      controllers.get('east')!.adminUrl,
    ]);
    assert.match(stdout, /NATS NOT connected \(Disconnected: lost the connection to .*; reconnecting; for /);
  } finally {
    await env.nats!.restart();
  }
  await everywhere(30_000, true, 'Connected');

  // A server that hangs keeps its connections open: three unanswered PINGs, 2 s apart, tell.
  const pid = env.nats!.process().pid!;
  process.kill(pid, 'SIGSTOP');
  try {
    await everywhere(15_000, false, 'Stale');
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await everywhere(30_000, true, 'Connected');
});
