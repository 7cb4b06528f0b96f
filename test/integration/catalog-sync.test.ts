// Catalog records travel over real NATS: exports from two clusters merge in a third;
// a record signed by another cluster, an unsigned one and a replayed older revision are
// refused and leave the catalog unchanged; only an explicit unexport removes a cluster.
import assert from 'node:assert/strict';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { createRootCa, type CertificateAuthority } from '@causeway/pki';
import {
  CATALOG_BUCKET,
  CatalogSync,
  exportKey,
  signExportRecord,
  signHeartbeat,
  type ExportRecord,
  type MergedService,
} from '@causeway/catalog';
import { CatalogBus, openBucket } from '@causeway/nats';
import { eventually, startNats, type NatsServer } from '@causeway/testing';
import { controllerIdentity } from '../support/controller-identity.ts';

const TD = 'mesh.test';

let nats: NatsServer;
let connection: NatsConnection;
let bus: CatalogBus;
let root: CertificateAuthority;
const controllers = new Map<string, { certificate: X509Certificate; privateKey: KeyObject }>();

function record(cluster: string, overrides: Partial<ExportRecord> = {}): ExportRecord {
  return {
    cluster,
    namespace: 'shop',
    name: 'cart',
    type: 'ClusterSetIP',
    sessionAffinity: 'None',
    exportCreatedAt: cluster === 'east' ? '2026-11-01T10:00:00Z' : '2026-11-02T10:00:00Z',
    ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
    revision: 1,
    gatewayAddresses: [`${cluster}.gateway.test:15443`],
    readyEndpoints: 1,
    identities: [`spiffe://${TD}/ns/shop/sa/cart`],
    ...overrides,
  };
}

before(async () => {
  nats = await startNats();
  connection = await connect({ servers: nats.url });
  bus = await CatalogBus.open(connection);
  root = await createRootCa({ trustDomain: TD });
  for (const cluster of ['east', 'west']) {
    const identity = await controllerIdentity(root, TD, cluster);
    controllers.set(cluster, identity);
    await bus.putSigner(cluster, identity.chainPem);
  }
});

after(async () => {
  await connection?.close();
  await nats?.dispose();
});

test('exports merge across clusters over NATS; forged, unsigned and replayed records are refused; unexport removes', async () => {
  let latest = new Map<string, MergedService>();
  const sync = new CatalogSync({
    trustDomain: TD,
    roots: () => [root.certificate],
    onCatalog: (catalog) => (latest = catalog),
  });
  await sync.attach(bus);
  const eventually = async (what: string, check: () => boolean | Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(await check(), what);
  };

  await bus.putRecord(signExportRecord(record('east', { revision: 2 }), controllers.get('east')!));
  await bus.putRecord(signExportRecord(record('west'), controllers.get('west')!));
  await eventually('both clusters imported', () => latest.get('shop/cart')?.clusters.length === 2);
  const before = JSON.stringify([...latest]);

  // West's controller signs a record that claims to be east's.
  await bus.putRecord(
    signExportRecord(
      record('east', { revision: 9, readyEndpoints: 0, gatewayAddresses: ['evil:1'] }),
      controllers.get('west')!,
    ),
  );
  // No signature at all.
  await bus.putRaw(
    exportKey('east', 'shop', 'cart'),
    JSON.stringify({ record: record('east', { revision: 10 }) }),
  );
  // A replay of east's older revision.
  await bus.putRecord(
    signExportRecord(record('east', { revision: 1, readyEndpoints: 7 }), controllers.get('east')!),
  );
  await eventually(
    'three refusals counted',
    async () => Object.values(await sync.refusals()).reduce((a, b) => a + b, 0) >= 3,
  );
  assert.deepEqual(await sync.refusals(), { wrong_cluster: 1, malformed: 1, stale_revision: 1 });
  assert.equal(JSON.stringify([...latest]), before, 'the catalog changed');

  // Only an explicit unexport (a tombstone) removes east.
  await bus.putRecord(
    signExportRecord(record('east', { revision: 3, tombstone: true }), controllers.get('east')!),
  );
  await eventually('east unexported', () => JSON.stringify(latest.get('shop/cart')?.clusters) === '["west"]');
  sync.detach();
});

test('heartbeats age on silence and delete nothing', async () => {
  const registry = new Registry();
  const sync = new CatalogSync({
    trustDomain: TD,
    roots: () => [root.certificate],
    onCatalog: () => {},
    registry,
  });
  await sync.attach(bus);
  const beat = (cluster: string, sequence: number) =>
    bus.putHeartbeat(
      signHeartbeat(
        {
          cluster,
          sequence,
          time: new Date().toISOString(),
          gatewayAddresses: [`${cluster}.gateway.test:15443`],
        },
        controllers.get(cluster)!,
      ),
    );
  await beat('east', 1);
  await beat('west', 1);
  for (let i = 0; i < 50 && sync.peerStatus().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    sync.peerStatus().map((p) => p.cluster),
    ['east', 'west'],
  );
  // West falls silent; east keeps beating.
  for (let sequence = 2; sequence <= 9; sequence++) {
    await new Promise((r) => setTimeout(r, 250));
    await beat('east', sequence);
  }
  await new Promise((r) => setTimeout(r, 100));
  const ages = Object.fromEntries(sync.peerStatus().map((p) => [p.cluster, p.ageSeconds]));
  assert.ok(ages.west! > 1.2, `west age ${ages.west}`);
  assert.ok(ages.east! < 0.5, `east age ${ages.east}`);
  const metrics = await registry.metrics();
  const westAge = /causeway_catalog_peer_heartbeat_age_seconds\{cluster="west"\} (\d+(?:\.\d+)?)/.exec(
    metrics,
  );
  assert.ok(westAge && Number(westAge[1]) > 1.2, `west's age in /metrics: ${westAge?.[1]}`);
  // West's export (from the first test) is still in the catalog: silence deletes nothing.
  assert.match(metrics, /causeway_catalog_exports\{cluster="west"\} 1/);
  // A replayed heartbeat does not make west look alive.
  await beat('west', 1);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(sync.peerStatus().find((p) => p.cluster === 'west')!.ageSeconds > 1.2);
  sync.detach();
});

test('entries lost without a marker (a rollup, a stream purge, a message delete) are noticed once, however much a key churns', async () => {
  // A bucket made by hand, as older releases made it: rollups, purges and deletes allowed.
  const server = await startNats();
  const conn = await connect({ servers: server.url });
  try {
    const kv = await new Kvm(conn).create(CATALOG_BUCKET, { history: 5 });
    const watched = await CatalogBus.open(conn);
    let seen = 0;
    const stop = await watched.watch(() => seen++);
    const put = async (key: string, value: string): Promise<void> => {
      const before = seen;
      await kv.put(key, value);
      await eventually(async () => assert.ok(seen > before, `the watcher did not see ${key}`));
    };
    // A heartbeat puts many revisions: the stream holds more messages than there are keys.
    const churn = async (): Promise<void> => {
      for (let beat = 0; beat < 12; beat++) await put('heartbeat.east', String(beat));
    };
    await put('signer.east', 'chain');
    await put('export.east.shop.cart', 'record');
    await churn();
    assert.equal(await watched.lostEntries(), false, 'nothing was lost yet');

    const rollup = headers();
    rollup.set('Nats-Rollup', 'all');
    await jetstream(conn).publish(`$KV.${CATALOG_BUCKET}.junk`, 'x', { headers: rollup });
    await churn();
    assert.equal(await watched.lostEntries(), true, 'a rollup went unnoticed');
    assert.equal(await watched.lostEntries(), false, 'one loss is reported once');

    await put('signer.east', 'chain');
    await jetstreamManager(conn).then((jsm) => jsm.streams.purge(`KV_${CATALOG_BUCKET}`));
    assert.equal(await watched.lostEntries(), true, 'a stream purge went unnoticed');

    await put('signer.east', 'chain');
    await put('export.east.shop.cart', 'record');
    const last = (await kv.status()).streamInfo.state.last_seq;
    await jetstreamManager(conn).then((jsm) => jsm.streams.deleteMessage(`KV_${CATALOG_BUCKET}`, last));
    assert.equal(await watched.lostEntries(), true, 'a message delete went unnoticed');
    assert.equal(await watched.lostEntries(), false, 'one loss is reported once');
    stop();
  } finally {
    await conn.close();
    await server.dispose();
  }
});

test('openBucket creates a bucket safe in one step, works as a KV bucket, and hardens an unsafe one only when asked', async () => {
  const jsm = await jetstreamManager(connection);
  const safe = await openBucket(connection, 'causeway-open-test', 3);
  assert.equal(safe.hardened, true);
  const { config } = await jsm.streams.info('KV_causeway-open-test');
  assert.deepEqual(
    [config.allow_rollup_hdrs, config.deny_purge, config.deny_delete, config.max_msgs_per_subject],
    [false, true, true, 3],
  );
  // Puts, gets, key deletes, history and a watch, as the KV client knows them.
  for (const value of ['a', 'b', 'c', 'd']) await safe.kv.put('k', value);
  assert.equal((await safe.kv.get('k'))?.string(), 'd');
  const kept: string[] = [];
  for await (const entry of await safe.kv.history({ key: 'k' })) kept.push(entry.string());
  assert.deepEqual(kept, ['b', 'c', 'd'], 'the history holds 3 values per key');
  await safe.kv.delete('k');
  assert.equal((await safe.kv.get('k'))?.operation, 'DEL');
  // A rollup is refused by the stream.
  const rollup = headers();
  rollup.set('Nats-Rollup', 'all');
  await assert.rejects(
    jetstream(connection).publish('$KV.causeway-open-test.x', 'wipe', { headers: rollup }),
  );
  assert.equal((await openBucket(connection, 'causeway-open-test', 3)).hardened, true, 'opened again');

  // A bucket someone made with the KV client's defaults is used as it is, with the reason...
  await new Kvm(connection).create('causeway-open-unsafe', { history: 2 });
  const unsafe = await openBucket(connection, 'causeway-open-unsafe', 2);
  assert.equal(unsafe.hardened, false);
  assert.match(unsafe.reason ?? '', /existed before/);
  // ...and hardened when the operator asks.
  assert.equal((await openBucket(connection, 'causeway-open-unsafe', 2, { harden: true })).hardened, true);
  const hardened = (await jsm.streams.info('KV_causeway-open-unsafe')).config;
  assert.deepEqual(
    [hardened.allow_rollup_hdrs, hardened.deny_purge, hardened.deny_delete],
    [false, true, true],
  );
});
