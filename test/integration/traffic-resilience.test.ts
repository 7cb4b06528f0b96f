// TrafficPolicies that decide where traffic goes and how much of it, every part a real
// process (NATS, a controller and an east-west gateway per cluster, apps behind sidecars):
// per-cluster weights and priorities, outlier detection of endpoints and of a remote
// cluster behind its gateway, and circuit breakers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { LocalFederation } from '@causeway/cli/local-federation';
import { exportedService, type SidecarProcess } from '@causeway/cli/local-federation';
import { eventually, repoRoot } from '@causeway/testing';
import { startTwoClusters, type TwoClusters } from '../support/two-clusters.ts';

let clusters: TwoClusters | undefined;
let federation: LocalFederation;
let client: SidecarProcess;

const POOL = 'pool.shop.svc.clusterset.local';
const HOLD = 'hold.shop.svc.clusterset.local';
/** Instances of `pool` that answer 500 now. */
const failing = new Set<string>();
/** Requests each instance of `pool` got. */
const served = new Map<string, number>();
/** `pool` instances: `a` and `b` in east, `w` in west. Each answers its own name. */
const instances = new Map(
  ['a', 'b', 'c', 'w'].map((name) => [
    name,
    http.createServer((request, response) => {
      served.set(name, (served.get(name) ?? 0) + 1);
      request.resume();
      response.writeHead(failing.has(name) ? 500 : 200, { 'content-type': 'text/plain' });
      response.end(name);
    }),
  ]),
);
/** Holds every request for a second: requests pile up in flight. */
const hold = http.createServer((request, response) => {
  request.resume();
  setTimeout(() => {
    if (response.destroyed) return;
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end('held');
  }, 1_000).unref();
});

before(async () => {
  clusters = await startTwoClusters('resilience');
  federation = clusters.federation;
  for (const cluster of ['east', 'west'])
    await federation.apply(cluster, 'pool.yaml', exportedService('shop', 'pool', 80, 'http'));
  await federation.apply('east', 'hold.yaml', exportedService('shop', 'hold', 80, 'http'));
  await behindSidecar('east', 'pool', 'pool-a', instances.get('a')!);
  await behindSidecar('east', 'pool', 'pool-b', instances.get('b')!);
  await behindSidecar('west', 'pool', 'pool-w', instances.get('w')!);
  await behindSidecar('east', 'hold', 'hold-east', hold);
  client = await federation.startSidecar('east', {
    namespace: 'shop',
    serviceAccount: 'web',
    accessLog: false,
  });
});

after(async () => {
  await clusters?.dispose();
  for (const server of [...instances.values(), hold]) {
    server.closeAllConnections();
    server.close();
  }
});

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly overflow?: string;
}

/** `server` listening, behind a new sidecar of `app` in `cluster`, registered as `workload`. */
async function behindSidecar(
  cluster: string,
  app: string,
  workload: string,
  server: http.Server,
): Promise<SidecarProcess> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return await federation.startSidecar(cluster, {
    namespace: 'shop',
    serviceAccount: app,
    workload: { name: workload, labels: { app } },
    inbound: [{ name: 'http', appPort: (server.address() as AddressInfo).port }],
    accessLog: false,
  });
}

/** One GET through the client's sidecar (a new connection unless `agent` keeps one). */
function get(host: string, agent: http.Agent | false = false, via: SidecarProcess = client): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port: via.outboundPort, path: '/', agent, headers: { host } },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            body,
            ...(response.headers['x-causeway-overflow']
              ? { overflow: String(response.headers['x-causeway-overflow']) }
              : {}),
          }),
        );
      },
    );
    request.setTimeout(10_000, () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** `count` GETs to `host`, `concurrency` at a time. */
async function many(
  count: number,
  concurrency: number,
  host = POOL,
  via: SidecarProcess = client,
): Promise<Answer[]> {
  const answers: Answer[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        answers.push(await get(host, false, via));
      }
    }),
  );
  return answers;
}

const tally = (answers: readonly Answer[]) => {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const key = answer.status === 200 ? answer.body : `${answer.status} ${answer.body.trim()}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

/** Applies (or replaces) the TrafficPolicy on `target` in east, the client's cluster. */
const trafficPolicy = (target: 'pool' | 'hold', spec: string) =>
  federation.apply(
    'east',
    `${target}-policy.yaml`,
    `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ${target}, namespace: shop }
spec:
  targetRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: ${target} }]
${spec}`,
  );
const poolPolicy = (spec: string) => trafficPolicy('pool', spec);
const holdPolicy = (spec: string) => trafficPolicy('hold', spec);

/** A counter's value on the client sidecar's `/metrics`, summed over series whose labels include `labels`. */
async function metric(name: string, labels: string, of: SidecarProcess = client): Promise<number> {
  const text = await (await fetch(`${of.adminUrl}/metrics`)).text();
  let total = 0;
  for (const [, found, value] of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm')))
    if (labels.split(',').every((label) => found!.split(',').includes(label))) total += Number(value);
  return total;
}

interface Ejected {
  service: string;
  cluster: string;
  endpoint: string;
  reason: string;
  ejections: number;
  untilMs: number;
}
const ejectedNow = async (): Promise<Ejected[]> =>
  ((await (await fetch(`${client.adminUrl}/debug/outliers`)).json()) as { ejected: Ejected[] }).ejected;

const explain = async (...args: string[]) =>
  (
    await promisify(execFile)(process.execPath, [
      path.join(repoRoot, 'apps/cli/bin/causeway.mjs'),
      'explain',
      'pool.shop',
      '--controller',
      federation.cluster('east').controller.adminUrl,
      '--sidecar',
      client.adminUrl,
      ...args,
    ])
  ).stdout;

test('cluster weights 80/20 split 1,000 connections between east and west within 5 points', async () => {
  await eventually(
    async () => assert.deepEqual(Object.keys(tally(await many(20, 4))).sort(), ['a', 'b']),
    30_000,
  );
  await poolPolicy(`  clusterWeights: [{ cluster: east, weight: 80 }, { cluster: west, weight: 20 }]\n`);
  await eventually(async () => assert.ok(tally(await many(40, 4)).w, 'west gets none yet'), 30_000);
  const counts = tally(await many(1_000, 16));
  assert.equal((counts.a ?? 0) + (counts.b ?? 0) + (counts.w ?? 0), 1_000, JSON.stringify(counts));
  assert.ok(counts.w! >= 150 && counts.w! <= 250, `west served ${counts.w} of 1,000; 20% asked`);
  assert.ok(
    counts.a! > 250 && counts.b! > 250,
    `east's two endpoints share its part: ${JSON.stringify(counts)}`,
  );
});

test('a cluster priority sends everything to the first cluster listed, the nearest one notwithstanding', async () => {
  await poolPolicy(`  locality: { clusterPriority: [west, east] }\n`);
  await eventually(async () => assert.deepEqual(tally(await many(20, 4)), { w: 20 }), 30_000);
  assert.deepEqual(tally(await many(200, 8)), { w: 200 });
});

test('an endpoint answering 5xx is ejected, gets no traffic until its time is up, then longer; at most the maximum share is out', async () => {
  await poolPolicy(
    `  loadBalancer: { type: RoundRobin }\n  outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: 6s, maxEjectionPercent: 50 }\n`,
  );
  failing.add('b');
  try {
    // Until b is ejected (the policy has to arrive first); only b fails, so only b can be.
    await eventually(async () => {
      await many(12, 2);
      assert.ok((await ejectedNow()).length > 0, 'b not ejected yet');
    }, 30_000);
    let [ejection] = await ejectedNow();
    assert.equal(ejection!.cluster, 'east');
    assert.equal(ejection!.reason, 'consecutive-5xx');
    assert.equal(ejection!.ejections, 1);
    assert.ok(ejection!.untilMs - Date.now() <= 6_000);
    // causeway explain shows it.
    const text = await explain();
    assert.match(text, /Endpoints ejected now \(outlier detection\), as sidecars see them:/);
    assert.match(
      text,
      new RegExp(
        `${client.adminUrl.replace(/[.]/g, '\\.')} +east +${ejection!.endpoint} +consecutive-5xx +1 `,
      ),
    );
    const gauge = await metric('causeway_outlier_ejected_endpoints', `destination_service="${POOL}"`);
    assert.equal(gauge, 1);
    // While it is out, every request goes to a.
    const during: Answer[] = [];
    while (Date.now() < ejection!.untilMs - 1_000 && during.length < 40) during.push(await get(POOL));
    assert.ok(during.length >= 10, `only ${during.length} requests in the ejection`);
    assert.deepEqual(tally(during), { a: during.length });
    // Its time is up: it gets requests again, still fails, and is out longer.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, ejection!.untilMs - Date.now() + 100)));
    await eventually(async () => {
      await many(6, 1);
      [ejection] = await ejectedNow();
      assert.equal(ejection?.ejections, 2);
    }, 20_000);
    assert.ok(ejection!.untilMs - Date.now() > 6_000, 'the second ejection is longer (12 s)');
    // a fails too: 50% of three endpoints (a, b, west's gateway) lets only one be out.
    failing.add('a');
    const both = await many(30, 2);
    assert.ok(tally(both)['500 a']! >= 3, JSON.stringify(tally(both)));
    assert.deepEqual(
      (await ejectedNow()).map((e) => e.endpoint),
      [ejection!.endpoint],
      'a stays in: the maximum ejection percentage holds',
    );
    assert.ok(
      (await metric(
        'causeway_outlier_ejections_total',
        'reason="consecutive-5xx",destination_cluster="east"',
      )) >= 2,
    );
  } finally {
    failing.clear();
  }
});

test('a circuit breaker answers requests over its limits with a fast 503 that names the limit; under them, none', async () => {
  /** `count` requests at once; the answers in the order they came. */
  const burst = async (count: number) => {
    const order: Answer[] = [];
    await Promise.all(Array.from({ length: count }, () => get(HOLD).then((answer) => order.push(answer))));
    return order;
  };
  await eventually(async () => assert.equal((await get(HOLD)).status, 200), 30_000);
  await holdPolicy('  circuitBreaker: { maxRequests: 4 }\n');
  await eventually(async () => assert.ok((await burst(6)).some((a) => a.overflow)), 30_000);
  const before = await metric('causeway_circuit_breaker_overflow_total', 'reason="max-requests"');
  const order = await burst(12);
  const overflowed = order.filter((a) => a.status === 503 && a.overflow === 'max-requests');
  assert.equal(overflowed.length, 8, JSON.stringify(tally(order)));
  assert.equal(order.filter((a) => a.status === 200).length, 4);
  // Fast: every refusal came before the app answered any of the four it held.
  assert.deepEqual(
    order.slice(0, 8).map((a) => a.status),
    Array(8).fill(503),
  );
  assert.match(overflowed[0]!.body, /circuit breaker: max-requests of TrafficPolicy shop\/hold reached/);
  assert.equal(
    (await metric('causeway_circuit_breaker_overflow_total', 'reason="max-requests"')) - before,
    8,
  );
  // Under the limit: nothing refused.
  assert.deepEqual(tally(await burst(4)), { held: 4 });
  // Two may wait for a place: six at once, two refused as pending overflow, four served.
  await holdPolicy('  circuitBreaker: { maxRequests: 2, maxPendingRequests: 2 }\n');
  await eventually(async () => {
    const answers = await burst(6);
    assert.deepEqual(tally(answers), {
      held: 4,
      '503 circuit breaker: max-pending-requests of TrafficPolicy shop/hold reached': 2,
    });
  }, 30_000);
});

test('idle timeouts: a connection carried whole (L4) with nothing going either way is closed after the idle time', async () => {
  /** A CONNECT through the client's sidecar, a GET inside it: the answer, or how the tunnel ended. */
  const throughConnect = () =>
    new Promise<string>((resolve, reject) => {
      const request = http.request({
        host: '127.0.0.1',
        port: client.outboundPort,
        method: 'CONNECT',
        path: `${HOLD}:80`,
      });
      request.on('error', reject);
      request.on('connect', (response, socket) => {
        if (response.statusCode !== 200) return resolve(`refused ${response.statusCode}`);
        let answer = '';
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => (answer += chunk));
        socket.on('error', () => {});
        socket.on('close', () => resolve(answer === '' ? 'closed unanswered' : answer.split('\r\n')[0]!));
        socket.write(`GET / HTTP/1.1\r\nhost: ${HOLD}\r\nconnection: close\r\n\r\n`);
      });
      request.end();
    });
  // The app holds each request for a second: under 500ms of idle time the tunnel is cut first.
  await holdPolicy('  timeouts: { idle: 500ms }\n');
  await eventually(async () => assert.equal(await throughConnect(), 'closed unanswered'), 30_000);
  await holdPolicy('  timeouts: { idle: 3s }\n');
  await eventually(async () => assert.equal(await throughConnect(), 'HTTP/1.1 200 OK'), 30_000);
});

test('a connect timeout gives up on an endpoint that never completes a handshake, and the request goes elsewhere at once', async () => {
  await poolPolicy(
    `  loadBalancer: { type: RoundRobin }\n  timeouts: { connect: 300ms }\n  outlierDetection: { consecutiveLocalOriginFailures: 1, maxEjectionPercent: 100 }\n`,
  );
  // A third endpoint in east, serving; then frozen: the kernel still accepts connections to
  // it, nothing answers their TLS handshakes. A new caller's sidecar has none open to it yet.
  const frozen = await behindSidecar('east', 'pool', 'pool-c', instances.get('c')!);
  await eventually(async () => assert.ok(tally(await many(12, 2)).c, 'c gets no traffic yet'), 30_000);
  frozen.child.kill('SIGSTOP');
  const caller = await federation.startSidecar('east', {
    namespace: 'shop',
    serviceAccount: 'web',
    accessLog: false,
  });
  try {
    const rounds: number[] = [];
    await eventually(async () => {
      const started = performance.now();
      const answers = await many(6, 2, POOL, caller);
      rounds.push(performance.now() - started);
      assert.deepEqual(
        answers.filter((a) => a.status !== 200),
        [],
      );
      assert.ok(
        (await metric(
          'causeway_outlier_ejections_total',
          'destination_cluster="east",reason="consecutive-local-failures"',
          caller,
        )) > 0,
        'no connect failure on c yet',
      );
    }, 30_000);
    // Without the policy a handshake gets 5 s; with it, 300 ms and then the next endpoint.
    assert.ok(Math.max(...rounds) < 3_000, `a round of requests took ${Math.max(...rounds)} ms`);
  } finally {
    frozen.child.kill('SIGCONT');
    await frozen.stop();
    await caller.stop();
  }
});

test('a remote cluster whose gateway fails is ejected and its traffic fails over to the next cluster', async () => {
  await poolPolicy(
    `  locality: { clusterPriority: [west, east] }\n  outlierDetection: { consecutiveLocalOriginFailures: 1, baseEjectionTime: 60s, maxEjectionPercent: 100 }\n`,
  );
  await eventually(async () => assert.deepEqual(tally(await many(20, 4)), { w: 20 }), 30_000);
  // Requests keep coming while west's east-west gateway dies.
  let running = true;
  const answers: Answer[] = [];
  const traffic = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (running) answers.push(await get(POOL));
    }),
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    await federation.cluster('west').gateway.stop('SIGKILL');
    const killedAt = answers.length;
    await eventually(async () => {
      const since = answers.slice(killedAt);
      assert.ok(
        since.filter((a) => a.body === 'a' || a.body === 'b').length >= 100,
        'east has not taken over',
      );
    }, 30_000);
    running = false;
    await traffic;
    assert.deepEqual(
      answers.filter((a) => a.status !== 200),
      [],
      'no request failed',
    );
  } finally {
    running = false;
    await traffic;
  }
  // (An endpoint of east may still be out from an earlier test.)
  const ejected = (await ejectedNow()).filter((e) => e.cluster === 'west');
  assert.deepEqual(
    ejected.map((e) => [e.endpoint, e.reason]),
    [[federation.cluster('west').gatewayAddress, 'consecutive-local-failures']],
  );
  assert.ok(
    (await metric(
      'causeway_outlier_ejections_total',
      'destination_cluster="west",reason="consecutive-local-failures"',
    )) >= 1,
  );
  const json = JSON.parse(await explain('--json')) as { ejectedEndpoints: Ejected[] };
  assert.ok(json.ejectedEndpoints.some((e) => e.cluster === 'west'));
});
