// TrafficPolicies in the sidecar, every part a real process (NATS, a controller and an
// east-west gateway per cluster, sample apps behind sidecars): fault injection for HTTP and
// gRPC, its share over 1,000 requests, its header match, its marker and metric.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { LocalFederation } from '@causeway/cli/local-federation';
import { exportedService, type SidecarProcess } from '@causeway/cli/local-federation';
import { grpcEchoClient, type SampleApp } from '@causeway/cli/sample-apps';
import { eventually, repoRoot } from '@causeway/testing';
import { startTwoClusters, type TwoClusters } from '../support/two-clusters.ts';

let clusters: TwoClusters | undefined;
let federation: LocalFederation;
let client: SidecarProcess;
let shelf: SampleApp;

const SHELF = 'shelf.shop.svc.clusterset.local';
/** The attempt header of every request each own app got, in order. */
const attempts = { flaky: [] as string[], down: [] as string[] };
const flaky = http.createServer((request, response) => {
  const attempt = String(request.headers['x-causeway-attempt'] ?? '');
  attempts.flaky.push(attempt);
  response.writeHead(attempt === '' || attempt === '1' ? 503 : 200, { 'content-type': 'text/plain' });
  response.end(`attempt ${attempt}`);
});
/** Slow on each first try (3 s), quick on the others; `/always-slow` is always slow. */
const slow = http.createServer((request, response) => {
  const attempt = String(request.headers['x-causeway-attempt'] ?? '');
  const answer = () => {
    if (response.destroyed) return;
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end(`attempt ${attempt}`);
  };
  if (request.url === '/always-slow' || attempt === '' || attempt === '1') setTimeout(answer, 3_000).unref();
  else answer();
});
/** A gRPC-shaped h2c app: notes each call's grpc-timeout, answers OK after `x-delay` ms. */
const deadlines: string[] = [];
const clock = http2.createServer((request, response) => {
  deadlines.push(String(request.headers['grpc-timeout'] ?? ''));
  request.resume();
  const answer = () => {
    if (response.stream.destroyed) return;
    response.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '0' });
    response.end();
  };
  setTimeout(answer, Number(request.headers['x-delay'] ?? 0)).unref();
});
const down = http.createServer((request, response) => {
  attempts.down.push(String(request.headers['x-causeway-attempt'] ?? ''));
  response.writeHead(503, { 'content-type': 'text/plain' });
  response.end('down');
});
const DESK = 'desk.shop.svc.clusterset.local:9000';
const DOWN = 'down.shop.svc.clusterset.local';

before(async () => {
  clusters = await startTwoClusters('policy');
  federation = clusters.federation;
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
  // Two apps of the test's own behind sidecars in east: `flaky` fails every first try,
  // `down` fails everything; each notes the attempt header of every request it gets.
  await federation.apply(
    'east',
    'own.yaml',
    [
      exportedService('shop', 'flaky', 80, 'http'),
      exportedService('shop', 'down', 80, 'http'),
      exportedService('shop', 'slow', 80, 'http'),
      exportedService('shop', 'clock', 9000, 'grpc', 'grpc'),
    ].join('---\n'),
  );
  for (const [name, server] of [
    ['flaky', flaky],
    ['down', down],
    ['slow', slow],
    ['clock', clock],
  ] as const) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const appPort = (server.address() as AddressInfo).port;
    await federation.startSidecar('east', {
      namespace: 'shop',
      serviceAccount: name,
      workload: { name: `${name}-east`, labels: { app: name } },
      inbound: [name === 'clock' ? { name: 'grpc', appPort, appProtocol: 'h2c' } : { name: 'http', appPort }],
    });
  }
  client = await federation.startSidecar('west', { namespace: 'shop', serviceAccount: 'web' });
});

after(async () => {
  await clusters?.dispose();
  flaky.close();
  down.close();
  slow.closeAllConnections();
  slow.close();
  clock.close();
});

/** One HTTP/1.1 GET through the client's sidecar, over a kept-alive connection of `agent`. */
function get(
  agent: http.Agent,
  headers: Record<string, string> = {},
  host = SHELF,
): Promise<{ status: number; fault?: string; ms: number; body: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port: client.outboundPort, path: '/', agent, headers: { host, ...headers } },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            body,
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

/**
 * The client sidecar's `causeway_faults_injected_total` series, keyed by their labels sorted
 * by name (`destination_service="…",fault="…",policy="…",source_cluster="…",source_workload="…"`).
 */
async function faultsCounted(): Promise<Map<string, number>> {
  const text = await (await fetch(`${client.adminUrl}/metrics`)).text();
  const counted = new Map<string, number>();
  for (const [, labels, value] of text.matchAll(/^causeway_faults_injected_total\{([^}]*)\} (\d+)$/gm))
    counted.set(labels!.split(',').sort().join(','), Number(value));
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
      'destination_service="shelf.shop.svc.clusterset.local",fault="abort",policy="shop/shelf-faults",source_cluster="west",source_workload="web"',
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
      'destination_service="shelf.shop.svc.clusterset.local",fault="abort",policy="shop/shelf-faults",source_cluster="west",source_workload="web"',
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
      'destination_service="shelf.shop.svc.clusterset.local",fault="delay",policy="shop/shelf-faults",source_cluster="west",source_workload="web"';
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

test('retries: an app that fails each first try answers every request, and sees which try it is in x-causeway-attempt (an app cannot set it)', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const FLAKY = 'flaky.shop.svc.clusterset.local';
  try {
    await eventually(async () => assert.equal((await get(agent, {}, FLAKY)).status, 503), 30_000);
    await federation.apply(
      'west',
      'flaky-retries.yaml',
      policy(
        'flaky-retries',
        'flaky',
        '  retries: { attempts: 2, retryOn: [5xx], backoff: { baseInterval: 5ms } }\n',
      ),
    );
    await eventually(async () => assert.equal((await get(agent, {}, FLAKY)).status, 200), 30_000);
    attempts.flaky.length = 0;
    // The app's own header is dropped: the first try still says 1.
    const outcomes = await many(100, 8, () => get(agent, { 'x-causeway-attempt': '7' }, FLAKY));
    assert.deepEqual(
      outcomes.filter((o) => o.status !== 200 || o.body !== 'attempt 2'),
      [],
    );
    assert.equal(attempts.flaky.filter((a) => a === '1').length, 100);
    assert.equal(attempts.flaky.filter((a) => a === '2').length, 100);
    assert.equal(attempts.flaky.length, 200);
  } finally {
    agent.destroy();
  }
});

test('retries mask injected aborts: 20% of tries aborted, every request answered; counted as retries', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  try {
    await federation.apply(
      'west',
      'shelf-faults.yaml',
      policy(
        'shelf-faults',
        'shelf',
        `  faultInjection: { abort: { httpStatus: 503, percentage: 20 } }
  retries: { attempts: 10, retryOn: [gateway-error], backoff: { baseInterval: 1ms }, budget: { percent: 100 } }
`,
      ),
    );
    // In force once an abort was retried.
    await eventually(async () => {
      await many(50, 8, () => get(agent));
      const text = await (await fetch(`${client.adminUrl}/metrics`)).text();
      assert.match(
        text,
        /causeway_retries_total\{[^}]*destination_service="shelf\.shop\.svc\.clusterset\.local"[^}]*policy="shop\/shelf-faults"[^}]*reason="503"\} [1-9]/,
      );
    }, 30_000);
    const outcomes = await many(500, 16, () => get(agent));
    assert.deepEqual(
      outcomes.filter((o) => o.status !== 200),
      [],
      'a request failed although retries were left',
    );
  } finally {
    agent.destroy();
  }
});

test('a retry budget of 20% caps the extra load on an app that fails everything', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    await eventually(async () => assert.equal((await get(agent, {}, DOWN)).status, 503), 30_000);
    await federation.apply(
      'west',
      'down-retries.yaml',
      policy(
        'down-retries',
        'down',
        '  retries: { attempts: 3, retryOn: [5xx], backoff: { baseInterval: 1ms }, budget: { percent: 20, minRetriesPerSecond: 1 } }\n',
      ),
    );
    await eventually(async () => {
      const before = attempts.down.length;
      assert.equal((await get(agent, {}, DOWN)).status, 503);
      assert.ok(attempts.down.length - before > 1, 'not retried yet');
    }, 30_000);
    // A fresh window for the budget: ten seconds since the retries above.
    await new Promise((resolve) => setTimeout(resolve, 10_500));
    const before = attempts.down.length;
    const outcomes = await many(300, 8, () => get(agent, {}, DOWN));
    assert.deepEqual(
      outcomes.filter((o) => o.status !== 503),
      [],
    );
    const load = attempts.down.length - before;
    // Without the budget: 1,200 tries. With it: the 300 requests, 20% of them, and 1 a second.
    assert.ok(load > 300, `${load} tries: none retried`);
    // (Ten more for a run so slow that the first second of retries leaves the window.)
    assert.ok(load <= 300 * 1.2 + 10 + 10, `${load} tries reached the app for 300 requests`);
    const text = await (await fetch(`${client.adminUrl}/metrics`)).text();
    assert.match(text, /causeway_retry_budget_exhausted_total\{[^}]*policy="shop\/down-retries"\} [1-9]/);
  } finally {
    agent.destroy();
  }
});

test('gRPC retries on UNAVAILABLE mask injected UNAVAILABLE aborts', async () => {
  const echo = grpcEchoClient(client.outboundPort, DESK);
  try {
    await federation.apply(
      'west',
      'desk-faults.yaml',
      policy(
        'desk-faults',
        'desk',
        `  faultInjection: { abort: { grpcStatus: 14, percentage: 20 } }
  retries: { attempts: 10, retryOn: [unavailable], backoff: { baseInterval: 1ms }, budget: { percent: 100 } }
`,
      ),
    );
    await eventually(async () => {
      await many(50, 8, () => echo.say('x').catch(() => undefined));
      const text = await (await fetch(`${client.adminUrl}/metrics`)).text();
      assert.match(text, /causeway_retries_total\{[^}]*policy="shop\/desk-faults"[^}]*reason="14"\} [1-9]/);
    }, 30_000);
    const code = (error: unknown) => (error as { code?: number }).code;
    const outcomes = await many(300, 16, () => echo.say('x').then(() => 0, code));
    assert.deepEqual(
      outcomes.filter((c) => c !== 0),
      [],
    );
  } finally {
    echo.close();
  }
});

/** One gRPC-shaped call to `clock` through the client's sidecar (h2c): its status, gRPC status and time. */
async function clockCall(
  headers: Record<string, string>,
): Promise<{ status: number; grpc: string; ms: number }> {
  const session = http2.connect(`http://127.0.0.1:${client.outboundPort}`);
  const started = performance.now();
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/causeway.Clock/Now',
        ':authority': 'clock.shop.svc.clusterset.local:9000',
        'content-type': 'application/grpc',
        te: 'trailers',
        ...headers,
      });
      let status = 0;
      let grpc = '';
      stream.on('response', (h) => {
        status = Number(h[':status']);
        grpc = String(h['grpc-status'] ?? '');
      });
      stream.on('trailers', (t) => (grpc = String(t['grpc-status'] ?? grpc)));
      stream.on('error', reject);
      stream.on('close', () => resolve({ status, grpc, ms: performance.now() - started }));
      stream.resume();
      stream.end(Buffer.alloc(5));
    });
  } finally {
    session.close();
  }
}

test('a per-try timeout retries a slow first try; the request timeout answers 504 on time, counted', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const SLOW = 'slow.shop.svc.clusterset.local';
  try {
    await federation.apply(
      'west',
      'slow-timeouts.yaml',
      policy(
        'slow-timeouts',
        'slow',
        `  timeouts: { request: 1s }
  retries: { attempts: 5, perTryTimeout: 300ms, retryOn: [gateway-error], backoff: { baseInterval: 1ms } }
`,
      ),
    );
    await eventually(async () => {
      const answer = await get(agent, {}, SLOW);
      assert.equal(answer.body, 'attempt 2');
    }, 30_000);
    const tries = await many(10, 5, () => get(agent, {}, SLOW));
    for (const answer of tries) {
      assert.equal(answer.status, 200);
      // (Attempt 3 when a busy machine let the second try pass 300 ms too.)
      assert.match(answer.body, /^attempt [2-6]$/);
      // The first try was given up after 300 ms, not the app's 3 s.
      assert.ok(answer.ms >= 295 && answer.ms < 2_500, `took ${Math.round(answer.ms)} ms`);
    }
    // Every try slow: each given up after 300 ms, and the request (five retries allowed) at 1 s.
    const never = await new Promise<{ status: number; ms: number }>((resolve, reject) => {
      const started = performance.now();
      http
        .get(
          {
            host: '127.0.0.1',
            port: client.outboundPort,
            path: '/always-slow',
            agent,
            headers: { host: SLOW },
          },
          (response) => {
            response.resume();
            response.on('end', () =>
              resolve({ status: response.statusCode!, ms: performance.now() - started }),
            );
          },
        )
        .on('error', reject);
    });
    assert.equal(never.status, 504);
    assert.ok(never.ms >= 990 && never.ms < 2_900, `the 504 came after ${Math.round(never.ms)} ms`);
    const text = await (await fetch(`${client.adminUrl}/metrics`)).text();
    assert.match(
      text,
      /causeway_timeouts_total\{[^}]*destination_service="slow\.shop\.svc\.clusterset\.local"[^}]*timeout="request"\} [1-9]/,
    );
  } finally {
    agent.destroy();
  }
});

test('a gRPC deadline is never extended: passed on as it came, or shortened to a policy, and an expired call gets DEADLINE_EXCEEDED', async () => {
  await eventually(async () => assert.equal((await clockCall({})).grpc, '0'), 30_000);
  // No policy yet: the caller's deadline goes on as it came (the caller and the server keep it).
  deadlines.length = 0;
  assert.equal((await clockCall({ 'grpc-timeout': '800m' })).grpc, '0');
  assert.deepEqual(deadlines, ['800m']);
  // A policy of 5 s does not lengthen a 300 ms deadline; one of 200 ms shortens a 5 s one.
  await federation.apply(
    'west',
    'clock-timeouts.yaml',
    policy('clock-timeouts', 'clock', '  timeouts: { request: 5s }\n'),
  );
  await eventually(async () => {
    const expired = await clockCall({ 'grpc-timeout': '300m', 'x-delay': '1500' });
    assert.equal(expired.grpc, '4');
    assert.ok(
      expired.ms >= 295 && expired.ms < 1_400,
      `DEADLINE_EXCEEDED after ${Math.round(expired.ms)} ms`,
    );
  }, 30_000);
  await federation.apply(
    'west',
    'clock-timeouts.yaml',
    policy('clock-timeouts', 'clock', '  timeouts: { request: 200ms }\n'),
  );
  await eventually(async () => {
    deadlines.length = 0;
    assert.equal((await clockCall({ 'grpc-timeout': '5S' })).grpc, '0');
    const given = Number(/^(\d+)m$/.exec(deadlines[0] ?? '')?.[1]);
    assert.ok(given > 0 && given <= 200, `the app got grpc-timeout ${deadlines[0]}`);
  }, 30_000);
});

test('a request whose time runs out during a retry backoff gets 504, and its kept-alive connection serves the next request', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await federation.apply(
      'west',
      'down-retries.yaml',
      policy(
        'down-retries',
        'down',
        '  timeouts: { request: 600ms }\n  retries: { attempts: 3, retryOn: [5xx], backoff: { baseInterval: 5s, maxInterval: 20s } }\n',
      ),
    );
    await eventually(async () => assert.equal((await get(agent, {}, DOWN)).status, 504), 30_000);
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await get(agent, {}, DOWN));
    // Each within the 10 s the helper waits: none hung behind the one before.
    assert.deepEqual(
      answers.map((a) => a.status),
      [504, 504, 504],
    );
    assert.equal(sockets.size, 1, 'the three went over one kept-alive connection');
  } finally {
    agent.destroy();
  }
});
