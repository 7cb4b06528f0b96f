// TrafficPolicies in the sidecar, every part a real process (NATS, a controller and an
// east-west gateway per cluster, sample apps behind sidecars): fault injection for HTTP and
// gRPC, its share over 1,000 requests, its header match, its marker and metric.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { exportedService, LocalFederation, type SidecarProcess } from '@causeway/cli/local-federation';
import { grpcEchoClient, type SampleApp } from '@causeway/cli/sample-apps';
import { eventually, repoRoot, startEnvironment, type Environment } from '@causeway/testing';

let env: Environment;
let dir: string;
let federation: LocalFederation;
let client: SidecarProcess;
let shelf: SampleApp;

const SHELF = 'shelf.shop.svc.clusterset.local';
const DESK = 'desk.shop.svc.clusterset.local:9000';

before(async () => {
  env = await startEnvironment({ nats: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-policy-'));
  federation = await LocalFederation.start({
    dir,
    natsUrl: env.nats!.url,
    clusters: ['east', 'west'],
    heartbeatInterval: '500ms',
    workloadGrace: '1s',
  });
  await federation.apply(
    'east',
    'shop.yaml',
    [
      exportedService('shop', 'shelf', 80, 'http'),
      exportedService('shop', 'desk', 9000, 'grpc', 'grpc'),
    ].join('---\n'),
  );
  shelf = (await federation.startSampleWorkload('east', 'shop', 'shelf', 'http')).app;
  await federation.startSampleWorkload('east', 'shop', 'desk', 'grpc');
  client = await federation.startSidecar('west', { namespace: 'shop', serviceAccount: 'web' });
});

after(async () => {
  await federation?.stop();
  await env?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** One HTTP/1.1 GET through the client's sidecar, over a kept-alive connection of `agent`. */
function get(
  agent: http.Agent,
  headers: Record<string, string> = {},
): Promise<{ status: number; fault?: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.get(
      {
        host: '127.0.0.1',
        port: client.outboundPort,
        path: '/',
        agent,
        headers: { host: SHELF, ...headers },
      },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            ms: performance.now() - started,
            ...(response.headers['x-causeway-fault']
              ? { fault: String(response.headers['x-causeway-fault']) }
              : {}),
          }),
        );
      },
    );
    request.setTimeout(10_000, () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** `count` calls of `call`, `concurrency` at a time. */
async function many<T>(count: number, concurrency: number, call: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        results.push(await call());
      }
    }),
  );
  return results;
}

const policy = (name: string, target: string, spec: string) => `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ${name}, namespace: shop }
spec:
  targetRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: ${target} }]
${spec}`;

/** The client sidecar's `causeway_faults_injected_total` series, by their labels. */
async function faultsCounted(): Promise<Map<string, number>> {
  const text = await (await fetch(`${client.adminUrl}/metrics`)).text();
  const counted = new Map<string, number>();
  for (const [, labels, value] of text.matchAll(/^causeway_faults_injected_total\{([^}]*)\} (\d+)$/gm))
    counted.set(labels!, Number(value));
  return counted;
}

test('an HTTP abort fault hits its share of 1,000 requests (within 5 points), marked and counted; the app sees none of them', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  try {
    await eventually(async () => assert.equal((await get(agent)).status, 200), 30_000);
    await federation.apply(
      'west',
      'shelf-faults.yaml',
      policy('shelf-faults', 'shelf', '  faultInjection: { abort: { httpStatus: 503, percentage: 10 } }\n'),
    );
    await eventually(async () => {
      const outcomes = await many(50, 8, () => get(agent));
      assert.ok(
        outcomes.some((o) => o.fault === 'abort'),
        'no injected abort yet',
      );
    }, 30_000);
    const servedBefore = shelf.served();
    const countedBefore = (await faultsCounted()).get(
      'source_cluster="west",source_workload="web",destination_service="shelf.shop.svc.clusterset.local",fault="abort",policy="shop/shelf-faults"',
    );
    const outcomes = await many(1_000, 16, () => get(agent));
    const aborted = outcomes.filter((o) => o.status === 503 && o.fault === 'abort').length;
    assert.ok(aborted >= 50 && aborted <= 150, `${aborted} of 1,000 aborted; 10% asked`);
    assert.deepEqual(
      outcomes.filter((o) => o.status !== 200 && o.fault !== 'abort'),
      [],
      'every other request succeeded',
    );
    assert.equal(shelf.served() - servedBefore, 1_000 - aborted, 'an aborted request reached the app');
    const counted = (await faultsCounted()).get(
      'source_cluster="west",source_workload="web",destination_service="shelf.shop.svc.clusterset.local",fault="abort",policy="shop/shelf-faults"',
    );
    assert.equal((counted ?? 0) - (countedBefore ?? 0), aborted);
  } finally {
    agent.destroy();
  }
});

test('a delay fault matched by a header delays only the requests that carry it', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  try {
    await federation.apply(
      'west',
      'shelf-faults.yaml',
      policy(
        'shelf-faults',
        'shelf',
        `  faultInjection:
    delay: { fixedDelay: 400ms, percentage: 100 }
    headers: [{ name: x-slow, value: "yes" }]
`,
      ),
    );
    await eventually(async () => {
      const slow = await get(agent, { 'x-slow': 'yes' });
      assert.equal(slow.status, 200);
      assert.ok(slow.ms >= 395, `took ${Math.round(slow.ms)} ms`);
    }, 30_000);
    const DELAYS =
      'source_cluster="west",source_workload="web",destination_service="shelf.shop.svc.clusterset.local",fault="delay",policy="shop/shelf-faults"';
    const delaysBefore = (await faultsCounted()).get(DELAYS) ?? 0;
    const slow = await many(10, 5, () => get(agent, { 'x-slow': 'yes' }));
    for (const outcome of slow) {
      assert.equal(outcome.status, 200);
      assert.ok(outcome.ms >= 395, `a marked request took ${Math.round(outcome.ms)} ms`);
    }
    // Not marked (or marked otherwise): no delay and, the abort gone with the old spec, no abort.
    const plain = await many(200, 8, () => get(agent, { 'x-slow': 'no' }));
    assert.deepEqual(
      plain.filter((o) => o.status !== 200),
      [],
    );
    // Exactly the ten marked requests were delayed (times alone would depend on the machine).
    assert.equal(((await faultsCounted()).get(DELAYS) ?? 0) - delaysBefore, 10);
  } finally {
    agent.destroy();
  }
});

test('a gRPC abort fault answers its gRPC status to its share of 1,000 calls (within 5 points)', async () => {
  const echo = grpcEchoClient(client.outboundPort, DESK);
  try {
    await eventually(() => echo.say('hello'), 30_000);
    await federation.apply(
      'west',
      'desk-faults.yaml',
      policy('desk-faults', 'desk', '  faultInjection: { abort: { grpcStatus: 8, percentage: 10 } }\n'),
    );
    const code = (error: unknown) => (error as { code?: number }).code;
    await eventually(async () => {
      const outcomes = await many(50, 8, () => echo.say('x').then(() => 0, code));
      assert.ok(outcomes.includes(8), 'no injected RESOURCE_EXHAUSTED yet');
    }, 30_000);
    const outcomes = await many(1_000, 16, () => echo.say('x').then(() => 0, code));
    const aborted = outcomes.filter((c) => c === 8).length;
    assert.ok(aborted >= 50 && aborted <= 150, `${aborted} of 1,000 aborted; 10% asked`);
    assert.equal(outcomes.filter((c) => c !== 0 && c !== 8).length, 0, 'every other call succeeded');
  } finally {
    echo.close();
  }
});

test('causeway explain shows the policy on a service, its Accepted condition and the spec in force; a refused one says why', async () => {
  const explain = async (args: string[]) =>
    (
      await promisify(execFile)(process.execPath, [
        path.join(repoRoot, 'apps/cli/bin/causeway.mjs'),
        'explain',
        'shelf.shop',
        '--controller',
        federation.cluster('west').controller.adminUrl,
        ...args,
      ])
    ).stdout;
  // A second policy on the same service: the first one holds it.
  await federation.apply(
    'west',
    'shelf-other.yaml',
    policy('shelf-other', 'shelf', '  faultInjection: { abort: { httpStatus: 500 } }\n'),
  );
  await eventually(async () => {
    const { trafficPolicies } = JSON.parse(await explain(['--json'])) as {
      trafficPolicies: Array<{ name: string; ancestors: Array<{ conditions: Array<{ reason: string }> }> }>;
    };
    assert.deepEqual(trafficPolicies.map((p) => [p.name, p.ancestors[0]!.conditions[0]!.reason]).sort(), [
      ['shelf-faults', 'Accepted'],
      ['shelf-other', 'Conflicted'],
    ]);
  }, 30_000);
  const text = await explain([]);
  assert.match(text, /TrafficPolicies on it in west:/);
  assert.match(
    text,
    /shop\/shelf-other +ServiceImport +False +Conflicted +TrafficPolicy shop\/shelf-faults targets/,
  );
  assert.match(text, /In force from shop\/shelf-faults \(generation \d+\): \{"faultInjection":/);
  assert.doesNotMatch(text, /In force from shop\/shelf-other/);
});
