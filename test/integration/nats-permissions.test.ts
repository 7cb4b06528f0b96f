// The shipped per-cluster NATS users (`causeway nats-config`) on a real nats-server: a
// cluster's user writes its own catalog keys and trust status and reads everything; it
// cannot write another cluster's keys, nor the trust bundle. The operator user can.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { CatalogSync, signExportRecord, signHeartbeat, type MergedService } from '@causeway/catalog';
import { CatalogBus } from '@causeway/nats';
import { createRootCa } from '@causeway/pki';
import { NatsTrustStore } from '@causeway/trust';
import { repoRoot, startNats, type NatsServer } from '@causeway/testing';
import { controllerIdentity } from '../support/controller-identity.ts';
import {
  controllerSettings,
  initTrust,
  startControllerProcess,
  writeYaml,
} from '../support/controller-process.ts';

const run = promisify(execFile);
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const TD = 'mesh.test';

let dir: string;
let nats: NatsServer;
let authConf: string;
const connections: NatsConnection[] = [];
const passwords = new Map<string, string>();

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-nats-auth-'));
  const { stdout } = await run(process.execPath, [
    cli,
    'nats-config',
    '--cluster',
    'east',
    '--cluster',
    'west',
    '--out',
    dir,
    '--json',
  ]);
  const generated = JSON.parse(stdout) as {
    authConf: string;
    users: Array<{ user: string; passwordFile: string }>;
  };
  for (const user of generated.users)
    passwords.set(user.user, (await readFile(user.passwordFile, 'utf8')).trim());
  authConf = await readFile(generated.authConf, 'utf8');
  nats = await startNats({ extraConfig: authConf });
});

after(async () => {
  for (const connection of connections) await connection.close().catch(() => {});
  await nats?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function as(user: string): Promise<NatsConnection> {
  const connection = await connect({ servers: nats.url, user, pass: passwords.get(user)! });
  connections.push(connection);
  return connection;
}

const refused = async (what: string, attempt: () => Promise<unknown>): Promise<void> => {
  await assert.rejects(attempt, `${what} must be refused`);
};

test('auth.conf holds bcrypt hashes, not the passwords, and the server takes them', async () => {
  assert.equal(passwords.size, 3);
  for (const [user, password] of passwords) {
    assert.ok(!authConf.includes(password), `${user}'s password is in auth.conf`);
    assert.match(authConf, new RegExp(`user: "${user}",? ?\\s*password: "\\$2[ab]\\$11\\$`));
  }
  await (await as('operator')).flush();
});

test('without a password nobody gets in', async () => {
  await assert.rejects(connect({ servers: nats.url, reconnect: false }), /Authorization Violation/i);
  await assert.rejects(
    connect({ servers: nats.url, user: 'east', pass: 'wrong', reconnect: false }),
    /Authorization Violation/i,
  );
});

test("a cluster writes its own keys, reads everyone's, and cannot write another cluster's keys or the bundle", async () => {
  const root = await createRootCa({ trustDomain: TD });
  const east = await controllerIdentity(root, TD, 'east');
  const west = await controllerIdentity(root, TD, 'west');
  // The operator creates and hardens the buckets.
  const init = JSON.parse(
    (
      await run(process.execPath, [
        cli,
        'nats-init',
        '--nats-url',
        nats.url,
        '--nats-user',
        'operator',
        '--nats-password-file',
        path.join(dir, 'operator.password'),
        '--json',
      ])
    ).stdout,
  ) as { buckets: Array<{ bucket: string; rollup: boolean; denyPurge: boolean; denyDelete: boolean }> };
  assert.deepEqual(
    init.buckets.map((b) => [b.bucket, b.rollup, b.denyPurge, b.denyDelete]),
    [
      ['causeway-catalog', false, true, true],
      ['causeway-trust', false, true, true],
    ],
  );
  const operator = await as('operator');
  const operatorBus = await CatalogBus.open(operator);

  const eastBus = await CatalogBus.open(await as('east'));
  const record = {
    cluster: 'east',
    namespace: 'shop',
    name: 'cart',
    type: 'ClusterSetIP' as const,
    sessionAffinity: 'None' as const,
    ports: [{ name: 'http', protocol: 'TCP' as const, port: 80 }],
    exportCreatedAt: '2026-01-01T00:00:00.000Z',
    revision: 1,
    gatewayAddresses: ['10.0.0.1:15443'],
    readyEndpoints: 1,
    identities: [],
  };
  await eastBus.putSigner('east', east.chainPem);
  await eastBus.putRecord(signExportRecord(record, east));
  await eastBus.putHeartbeat(
    signHeartbeat(
      { cluster: 'east', sequence: 1, time: new Date().toISOString(), gatewayAddresses: [] },
      east,
    ),
  );
  const eastTrust = await NatsTrustStore.open(connections.at(-1)!);
  await eastTrust.putStatus({
    cluster: 'east',
    bundleVersion: 1,
    bundleHash: 'x',
    intermediate: 'y',
    intermediateRoot: 'z',
    workloads: { byRoot: {}, byBundle: {} },
    time: new Date().toISOString(),
  });

  // East tries to act for west, and to change who is trusted.
  await refused("east writing west's signer", () => eastBus.putSigner('west', west.chainPem));
  await refused("east writing west's export", () =>
    eastBus.putRaw(
      'export.west.shop.cart',
      JSON.stringify(signExportRecord({ ...record, cluster: 'west' }, west)),
    ),
  );
  await refused("east writing west's heartbeat", () => eastBus.putRaw('heartbeat.west', '{}'));
  await refused('east writing the trust bundle', () => eastTrust.putRawBundle('{}'));
  await refused("east writing west's intermediate", () => eastTrust.putIntermediate('west', 'PEM'));
  // Writing its own key with a rollup header would purge the whole bucket: refused.
  const rollup = headers();
  rollup.set('Nats-Rollup', 'all');
  await refused('east rolling up the catalog through its own key', () =>
    jetstream(connections.at(-1)!).publish('$KV.causeway-catalog.export.east.shop.cart', 'x', {
      headers: rollup,
    }),
  );

  // West's user reads the whole catalog (a watcher works under these permissions).
  let seen: MergedService | undefined;
  const sync = new CatalogSync({
    trustDomain: TD,
    roots: () => [new X509Certificate(root.certificatePem)],
    onCatalog: (catalog) => (seen = catalog.get('shop/cart')),
  });
  await sync.attach(await CatalogBus.open(await as('west')));
  for (let i = 0; i < 100 && !seen; i++) await new Promise((r) => setTimeout(r, 50));
  sync.detach();
  assert.deepEqual(seen?.clusters, ['east']);

  // Nothing east was refused reached the bucket; the operator may write anything.
  const keys: string[] = [];
  const stop = await operatorBus.watch((key) => keys.push(key));
  for (let i = 0; i < 40 && keys.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
  stop();
  assert.deepEqual(keys.sort(), ['export.east.shop.cart', 'heartbeat.east', 'signer.east']);
  await operatorBus.putSigner('west', west.chainPem);
});

test('a controller process connects as its cluster user; the CLI publishes as the operator', async () => {
  const trustDir = path.join(dir, 'trust');
  const directory = await initTrust(trustDir, TD, ['east']);
  const asEast = [
    '--nats-url',
    nats.url,
    '--nats-user',
    'east',
    '--nats-password-file',
    path.join(dir, 'east.password'),
  ];
  const denied = await run(process.execPath, [cli, 'trust', 'publish', '--dir', trustDir, ...asEast]).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(denied.code, 1, 'a cluster user must not publish the bundle');
  assert.match(denied.stderr, /^causeway: .*(permission|timeout)/i);
  await run(process.execPath, [
    cli,
    'trust',
    'publish',
    '--dir',
    trustDir,
    '--nats-url',
    nats.url,
    '--nats-user',
    'operator',
    '--nats-password-file',
    path.join(dir, 'operator.password'),
  ]);
  const controller = await startControllerProcess(
    await writeYaml(path.join(dir, 'east.yaml'), {
      ...controllerSettings({
        directory,
        cluster: 'east',
        trustDomain: TD,
        stateDir: path.join(dir, 'state-east'),
        token: 'a-join-token-0123456789',
      }),
      nats: { url: nats.url, user: 'east', passwordFile: path.join(dir, 'east.password') },
      statusInterval: '200ms',
    }),
  );
  try {
    await controller.waitForLog('following trust updates over NATS');
    // Its trust status (its own key) reaches the bucket.
    const store = await NatsTrustStore.open(await as('operator'));
    let status;
    for (let i = 0; i < 50 && !status; i++) {
      status = await store.status('east');
      if (!status) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status?.cluster, 'east');
  } finally {
    assert.equal(await controller.stop(), 0);
  }
});
