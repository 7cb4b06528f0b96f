// NATS (JetStream KV), Redis and Prometheus of the test bed are the real servers.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import { Redis } from 'ioredis';
import { Counter, Registry } from 'prom-client';
import { startNats, startPrometheus, startRedis, type NatsServer, type RedisServer } from '@causeway/testing';

describe('nats-server with JetStream', () => {
  let nats: NatsServer;
  const connections: NatsConnection[] = [];
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await Promise.all(connections.map((c) => c.close()));
    await nats?.dispose();
  });

  test('a KV put on one connection is seen by a watch on another', async () => {
    const writer = await connect({ servers: nats.url, name: 'writer' });
    const reader = await connect({ servers: nats.url, name: 'reader' });
    connections.push(writer, reader);
    const bucket = await new Kvm(writer).create('catalog', { history: 5 });
    const watched = await new Kvm(reader).open('catalog');
    const watcher = await watched.watch({ key: 'east.>' });
    const seen = (async (): Promise<KvWatchEntry> => {
      for await (const entry of watcher) {
        if (entry.key === 'east.default.web') return entry;
      }
      throw new Error('watch ended');
    })();
    const revision = await bucket.put('east.default.web', JSON.stringify({ ports: [80] }));
    const entry = await Promise.race([
      seen,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no watch event in 5 s')), 5_000)),
    ]);
    watcher.stop();
    assert.equal(entry.revision, revision);
    assert.deepEqual(entry.json(), { ports: [80] });
  });

  test('JetStream state survives a restart of the server', async () => {
    const before = await connect({ servers: nats.url });
    const bucket = await new Kvm(before).create('durable');
    await bucket.put('key', 'kept');
    await before.close();
    await nats.restart();
    const afterRestart = await connect({ servers: nats.url });
    connections.push(afterRestart);
    const entry = await (await new Kvm(afterRestart).open('durable')).get('key');
    assert.equal(entry?.string(), 'kept');
  });
});

describe('redis-server', () => {
  let redis: RedisServer;
  let client: Redis;
  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
  });
  after(async () => {
    client?.disconnect();
    await redis?.dispose();
  });

  test('a counter round-trips with an expiry', async () => {
    const key = 'ratelimit:web:1';
    assert.equal(await client.incr(key), 1);
    assert.equal(await client.incrby(key, 4), 5);
    await client.pexpire(key, 60_000);
    assert.equal(await client.get(key), '5');
    const ttl = await client.pttl(key);
    assert.ok(ttl > 0 && ttl <= 60_000, `ttl ${ttl}`);
  });
});

describe('prometheus', () => {
  test('scrapes a prom-client endpoint and answers a PromQL query', async () => {
    const registry = new Registry();
    const requests = new Counter({
      name: 'causeway_testbed_requests_total',
      help: 'Requests seen by the test bed probe.',
      labelNames: ['source_cluster', 'response_code'],
      registers: [registry],
    });
    requests.inc({ source_cluster: 'east', response_code: '200' }, 7);
    requests.inc({ source_cluster: 'west', response_code: '503' }, 2);
    const exporter = http.createServer(async (_req, res) => {
      res.setHeader('content-type', registry.contentType);
      res.end(await registry.metrics());
    });
    await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
    const { port } = exporter.address() as AddressInfo;
    const prometheus = await startPrometheus({
      jobs: [{ jobName: 'probe', targets: [`127.0.0.1:${port}`] }],
    });
    try {
      const samples = await prometheus.waitForQuery(
        'sum by (source_cluster) (causeway_testbed_requests_total{job="probe"})',
        (result) => result.length === 2,
      );
      const byCluster = Object.fromEntries(samples.map((s) => [s.metric.source_cluster, s.value]));
      assert.deepEqual(byCluster, { east: 7, west: 2 });
      await assert.rejects(prometheus.query('sum by (source_cluster (bad'), /PromQL/);
    } finally {
      await prometheus.dispose();
      await new Promise((resolve) => exporter.close(resolve));
    }
  });
});
