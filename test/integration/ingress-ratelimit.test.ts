// RateLimitPolicy at the ingress, every part real: two ingress gateway replicas sharing one
// redis-server hold a limit together; Redis stopped mid-test, the local limiter (FailOpen) or
// a refusal (FailClosed) takes over and is counted; Redis back, the limits are global again.
import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, test } from 'node:test';
import type { IngressProcess, LocalFederation } from '@causeway/cli/local-federation';
import { exportedService } from '@causeway/cli/local-federation';
import { eventually, startRedis, type RedisServer } from '@causeway/testing';
import { closeServers, PUBLIC_GATEWAY, send, startEcho, type Answer } from '../support/ingress.ts';
import { startTwoClusters, type TwoClusters } from '../support/two-clusters.ts';

let clusters: TwoClusters | undefined;
let federation: LocalFederation;
let redis: RedisServer | undefined;
const servers: http.Server[] = [];
let replicas: IngressProcess[] = [];

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: limited, namespace: shop }
spec:
  parentRefs: [{ name: public, namespace: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /limited } }]
      backendRefs: [{ name: v1, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: strict, namespace: shop }
spec:
  parentRefs: [{ name: public, namespace: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /strict } }]
      backendRefs: [{ name: v1, port: 80 }]
---
apiVersion: policy.causeway.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: per-tenant, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited }]
  limits:
    - name: tenant
      descriptors: [{ key: header, header: x-tenant }]
      requests: 199
      unit: hour
---
apiVersion: policy.causeway.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: strict, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: strict }]
  failureMode: FailClosed
  limits: [{ name: all, requests: 1000, unit: hour }]
`;

before(async () => {
  clusters = await startTwoClusters('ratelimit');
  federation = clusters.federation;
  redis = await startRedis();
  await federation.apply('east', 'v1.yaml', exportedService('shop', 'v1', 80, 'http'));
  servers.push((await startEcho(federation, 'east', 'v1', 'v1-east')).server);
  await federation.apply('east', 'gateway.yaml', PUBLIC_GATEWAY);
  await federation.apply('east', 'routes.yaml', ROUTES);
  const settings = {
    redis: { url: redis.url, connectTimeout: '200ms', commandTimeout: '200ms' },
    accessLog: false,
  };
  replicas = [
    await federation.startIngressGateway('east', [80], settings, 'ingress-a'),
    await federation.startIngressGateway('east', [80], settings, 'ingress-b'),
  ];
  for (const replica of replicas)
    await eventually(
      async () => assert.equal((await send(replica.listeners['80']!, '/strict')).status, 200),
      20_000,
    );
});

after(async () => {
  await clusters?.dispose();
  await redis?.dispose();
  closeServers(servers);
});

/** `count` requests spread over both replicas, eight at a time. */
async function burst(count: number, path: string, headers: Record<string, string>): Promise<Answer[]> {
  const answers: Answer[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < count) {
        const index = next++;
        answers.push(await send(replicas[index % 2]!.listeners['80']!, path, { headers }));
      }
    }),
  );
  return answers;
}

const statuses = (answers: readonly Answer[]) => {
  const counts: Record<number, number> = {};
  for (const answer of answers) counts[answer.status] = (counts[answer.status] ?? 0) + 1;
  return counts;
};

/** A counter's value on a replica's `/metrics`, summed over series whose labels include `labels`. */
async function metric(replica: IngressProcess, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${replica.adminUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) && line.includes(labels)) total += Number(line.split(' ').at(-1));
  return total;
}

test('two replicas sharing Redis hold one limit together; a limited request gets 429 with RateLimit and Retry-After', async () => {
  const answers = await burst(600, '/limited', { 'x-tenant': 'acme' });
  const counts = statuses(answers);
  // 199 per hour (an interval of 18.09 s, not a whole number of milliseconds): over a few
  // seconds, the burst of 199 exactly, whichever replica each request reached.
  assert.deepEqual(counts, { 200: 199, 429: 401 });
  const limited = answers.find((a) => a.status === 429)!;
  assert.equal(limited.headers['ratelimit-policy'], '"tenant";q=199;w=3600');
  assert.match(String(limited.headers.ratelimit), /^"tenant";r=0;t=\d+$/);
  assert.ok(Number(limited.headers['retry-after']) >= 1);
  const allowed = answers.find((a) => a.status === 200)!;
  assert.match(String(allowed.headers.ratelimit), /^"tenant";r=\d+;t=\d+$/);
  // Another tenant has its own bucket; a request without the header is not limited at all.
  assert.equal(
    (await send(replicas[0]!.listeners['80']!, '/limited', { headers: { 'x-tenant': 'other' } })).status,
    200,
  );
  const anonymous = await send(replicas[1]!.listeners['80']!, '/limited');
  assert.equal(anonymous.status, 200);
  assert.equal(anonymous.headers.ratelimit, undefined);
  // Both replicas decided, through Redis.
  for (const replica of replicas)
    assert.ok((await metric(replica, 'causeway_ratelimit_decisions_total', 'backend="redis"')) > 0);
});

test('Redis stopped: FailOpen limits are held by each replica locally, FailClosed refuses, both counted; Redis back: global again', async () => {
  await redis!.stop();
  const [a] = replicas as [IngressProcess, IngressProcess];
  // The local limiter of replica a holds the limit on its own (a fresh bucket: 199 of 250).
  const local: Answer[] = [];
  for (let i = 0; i < 250; i++)
    local.push(await send(a.listeners['80']!, '/limited', { headers: { 'x-tenant': 'outage' } }));
  assert.deepEqual(statuses(local), { 200: 199, 429: 51 });
  assert.ok((await metric(a, 'causeway_ratelimit_fallback_total', '')) >= 250);
  assert.ok((await metric(a, 'causeway_ratelimit_decisions_total', 'backend="local"')) >= 250);
  const strict = await send(a.listeners['80']!, '/strict');
  assert.equal(strict.status, 503, strict.body);
  const gauge = await (await fetch(`${a.adminUrl}/metrics`)).text();
  assert.match(gauge, /causeway_ratelimit_redis_connected 0/);

  await redis!.restart();
  for (const replica of replicas)
    await eventually(async () => {
      assert.match(
        await (await fetch(`${replica.adminUrl}/metrics`)).text(),
        /causeway_ratelimit_redis_connected 1/,
      );
      assert.equal((await send(replica.listeners['80']!, '/strict')).status, 200);
    }, 15_000);
  // Global again: a new tenant's 300 requests over both replicas get 199 through, not 300.
  assert.deepEqual(statuses(await burst(300, '/limited', { 'x-tenant': 'after' })), { 200: 199, 429: 101 });
});
