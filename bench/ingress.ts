// The ingress hop measured three ways in one run, all in front of the same 1 KiB app:
// Causeway's ingress gateway (one HTTPRoute, metrics and access log on; the app is a mesh
// workload, so the gateway reaches it over mTLS through the app's sidecar), a bare
// @fastify/http-proxy (undici upstream, the same keep-alive), and nginx as a reverse proxy
// (keep-alive upstream). Then the gateway with 10 routes against 10,000 (what matching
// costs as routes grow), and the latency a Redis-backed RateLimitPolicy adds at a fixed rate.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { exportedService, LocalFederation, type IngressProcess } from '@causeway/cli/local-federation';
import { freePort, repoRoot, startNats, startRedis } from '@causeway/testing';
import { report } from './report.ts';
import { fixedRateApart } from './fixed-rate-process.ts';
import { cpuSeconds, ensurePackages, saturation, startApp, withChildren } from './sidecar.ts';

const say = (line: string): void => void process.stderr.write(`bench ingress: ${line}\n`);
const HOST = 'shop.example.com';
/** Latency rounds without and with the rate limit, in turns. */
const LATENCY_ROUNDS = 3;

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: public, namespace: bench }
spec:
  gatewayClassName: causeway
  listeners: [{ name: http, port: 80, protocol: HTTP }]
`;

/** `count` HTTPRoutes, each a PathPrefix `/r<i>` to the app, plus the one for `/`. */
function routes(count: number, limited: boolean): string {
  const docs = [
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: main, namespace: bench }
spec:
  parentRefs: [{ name: public }]
  hostnames: [${HOST}]
  rules: [{ backendRefs: [{ name: app, port: 80 }] }]
`,
  ];
  for (let i = 0; i < count; i++)
    docs.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r${i}, namespace: bench }
spec:
  parentRefs: [{ name: public }]
  hostnames: [${HOST}]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /r${i} } }], backendRefs: [{ name: app, port: 80 }] }]
`);
  if (limited)
    docs.push(`apiVersion: policy.causeway.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: generous, namespace: bench }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: main }]
  limits: [{ name: per-client, descriptors: [{ key: remoteAddress }], requests: 1000000, unit: minute }]
`);
  return docs.join('---\n');
}

/** Waits until the gateway logs a config with `count` routes, and `path` answers 200. */
async function awaitRoutes(ingress: IngressProcess, count: number, pathname: string): Promise<void> {
  const port = Number(ingress.listeners['80']!.split(':')[1]);
  for (let i = 0; ; i++) {
    const applied = ingress.logs.some((entry) => entry.msg === 'config applied' && entry.routes === count);
    const ok =
      applied &&
      (await new Promise<boolean>((resolve) =>
        http
          .get({ host: '127.0.0.1', port, path: pathname, headers: { host: HOST } }, (r) => {
            r.resume();
            resolve(r.statusCode === 200);
          })
          .on('error', () => resolve(false)),
      ));
    if (ok) return;
    if (i > 1_200) throw new Error(`the gateway never served ${count} routes`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits until the gateway's answers carry rate-limit headers (`limited`), or no longer do. */
async function untilLimited(port: number, limited: boolean): Promise<void> {
  for (let i = 0; ; i++) {
    const carries = await new Promise<boolean | undefined>((resolve) =>
      http
        .get({ host: '127.0.0.1', port, path: '/', headers: { host: HOST } }, (r) => {
          r.resume();
          resolve(r.headers['ratelimit-policy'] !== undefined);
        })
        .on('error', () => resolve(undefined)),
    );
    if (carries === limited) return;
    if (i > 300) throw new Error(`the RateLimitPolicy never ${limited ? 'reached' : 'left'} the gateway`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A bare @fastify/http-proxy to the app, in its own process. */
async function startBareProxy(appPort: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import Fastify from 'fastify';
       import proxy from '@fastify/http-proxy';
       const app = Fastify({ logger: false });
       await app.register(proxy, { upstream: 'http://127.0.0.1:${appPort}' });
       await app.listen({ host: '127.0.0.1', port: ${port} });
       console.log('ready');`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: repoRoot },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the bare proxy exited (${code})`)));
  });
  return { child, port };
}

/** nginx as a reverse proxy to the app (keep-alive upstream, one worker per core). */
async function startNginx(dir: string, appPort: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off; worker_processes auto; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; } } }
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', conf], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) =>
      http
        .get({ host: '127.0.0.1', port, path: '/' }, (r) => {
          r.resume();
          resolve(r.statusCode === 200);
        })
        .on('error', () => resolve(false)),
    );
    if (ok) return { child, port };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nginx did not answer; see ${dir}/error.log`);
}

export async function ingressBench(options: {
  json?: boolean;
  seconds: number;
  rate: number;
}): Promise<void> {
  ensurePackages();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-bench-ingress-'));
  const nats = await startNats();
  const redis = await startRedis();
  const children: ChildProcess[] = [];
  let federation: LocalFederation | undefined;
  try {
    const app = await startApp();
    children.push(app.child);
    say('building the components (npm run build), to measure what is deployed...');
    execFileSync(process.execPath, [path.join(repoRoot, 'scripts/build.mjs')], { stdio: 'ignore' });
    say('starting a controller, the app behind its sidecar, and the ingress gateway...');
    federation = await LocalFederation.start({
      dir: path.join(dir, 'mesh'),
      natsUrl: nats.url,
      clusters: ['bench'],
      stderr: 'ignore',
      built: true,
    });
    await federation.apply('bench', 'app.yaml', exportedService('bench', 'app', 80, 'http'));
    await federation.apply('bench', 'gateway.yaml', GATEWAY);
    await federation.apply('bench', 'routes.yaml', routes(0, false));
    const appSidecar = await federation.startSidecar('bench', {
      namespace: 'bench',
      serviceAccount: 'app',
      workload: { name: 'app-0', labels: { app: 'app' } },
      inbound: [{ name: 'http', appPort: app.port }],
      accessLog: false,
    });
    const ingress = await federation.startIngressGateway('bench', [80], {
      redis: { url: redis.url },
      accessLog: true,
    });
    const ingressPort = Number(ingress.listeners['80']!.split(':')[1]);
    await awaitRoutes(ingress, 1, '/');
    const bare = await startBareProxy(app.port);
    children.push(bare.child);
    const nginx = await startNginx(path.join(dir, 'nginx'), app.port);
    children.push(nginx.child);

    const rps: Record<string, number> = {};
    // CPU per request of each process on the path (in µs), measured during its saturation run.
    const cpu: Record<string, Record<string, number>> = {};
    const paths = {
      nginx: { port: nginx.port, processes: { proxy: await withChildren(nginx.child.pid!) } },
      bare_proxy: { port: bare.port, processes: { proxy: [bare.child.pid!] } },
      causeway: {
        port: ingressPort,
        processes: { gateway: [ingress.child.pid!], app_sidecar: [appSidecar.child.pid!] },
      },
    };
    for (const [name, { port, processes }] of Object.entries(paths)) {
      say(`${name}: saturation with wrk (32 connections, ${options.seconds} s)...`);
      const measured = { ...processes, app: [app.child.pid!] };
      const before = Object.fromEntries(
        await Promise.all(
          Object.entries(measured).map(async ([part, pids]) => [part, await cpuSeconds(pids)]),
        ),
      ) as Record<string, number>;
      const run = await saturation(port, HOST, options.seconds);
      rps[name] = run.rps;
      cpu[name] = {};
      for (const [part, pids] of Object.entries(measured))
        cpu[name][part] = Math.round((((await cpuSeconds(pids)) - before[part]!) / run.requests) * 1e7) / 10;
    }

    // Without and with the limit in turns, three rounds each (the load generator in a process
    // of its own): p99 drifts between runs, and the medians of the rounds hold still.
    // The same rate through the bare proxy: the floor this machine sets for p99.
    say(`latency at ${options.rate} rps through the bare proxy...`);
    const bareLatency = await fixedRateApart({
      port: bare.port,
      host: HOST,
      rate: options.rate,
      seconds: options.seconds,
      path: '/',
    });
    const plainP50: number[] = [];
    const plainP99: number[] = [];
    const limitedP99: number[] = [];
    let errors = 0;
    const load = { port: ingressPort, host: HOST, rate: options.rate, seconds: options.seconds, path: '/' };
    for (let round = 1; round <= LATENCY_ROUNDS; round++) {
      for (const limited of [false, true]) {
        say(
          `latency at ${options.rate} rps, ${limited ? 'with' : 'without'} a Redis-backed limit (round ${round} of ${LATENCY_ROUNDS})...`,
        );
        await federation.apply('bench', 'routes.yaml', routes(0, limited));
        // The policy is in force (or gone) once the answers say so.
        await untilLimited(ingressPort, limited);
        const latency = await fixedRateApart(load);
        errors += latency.errors;
        (limited ? limitedP99 : plainP99).push(latency.p99);
        if (!limited) plainP50.push(latency.p50);
      }
    }
    await federation.apply('bench', 'routes.yaml', routes(0, false));
    await untilLimited(ingressPort, false);

    say('the gateway with 10 routes...');
    // (Measured last: a config of 10,000 routes leaves work behind in the controller.)
    await federation.apply('bench', 'routes.yaml', routes(10, false));
    await awaitRoutes(ingress, 11, '/r5');
    const routes10 = (await saturation(ingressPort, HOST, options.seconds, '/r5/x')).rps;
    say('the gateway with 10,000 routes (compiled by the controller, sent to the gateway)...');
    await federation.apply('bench', 'routes.yaml', routes(10_000, false));
    await awaitRoutes(ingress, 10_001, '/r5000');
    const routes10000 = (await saturation(ingressPort, HOST, options.seconds, '/r5000/x')).rps;

    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    const result = {
      bench: 'ingress',
      causeway_rps: rps.causeway!,
      bare_proxy_rps: rps.bare_proxy!,
      nginx_rps: rps.nginx!,
      throughput_ratio_vs_nginx: ratio(rps.causeway!, rps.nginx!),
      throughput_ratio_vs_bare_proxy: ratio(rps.causeway!, rps.bare_proxy!),
      routes_10_rps: routes10,
      routes_10000_rps: routes10000,
      routing_cost_ratio: ratio(routes10, routes10000),
      ratelimit_added_p99_ms: Math.round((median(limitedP99) - median(plainP99)) * 1000) / 1000,
      p50_ms: plainP50,
      p99_ms: plainP99,
      bare_proxy_p50_ms: bareLatency.p50,
      bare_proxy_p99_ms: bareLatency.p99,
      p99_with_ratelimit_ms: limitedP99,
      errors,
      cpu_us_per_request: cpu,
      causeway_hops: 'gateway -> mTLS -> app sidecar -> app (bare proxy and nginx: proxy -> app)',
    };
    report(
      result,
      [
        ['nginx (reverse proxy)', `${rps.nginx} rps`],
        ['bare @fastify/http-proxy', `${rps.bare_proxy} rps`],
        ['causeway ingress (+ app sidecar, mTLS)', `${rps.causeway} rps`],
        [
          'throughput / nginx, / bare proxy',
          `${result.throughput_ratio_vs_nginx}, ${result.throughput_ratio_vs_bare_proxy}`,
        ],
        ...Object.entries(cpu).map(([name, parts]): [string, string] => [
          `CPU per request, ${name}`,
          Object.entries(parts)
            .map(([part, us]) => `${part} ${us} µs`)
            .join(', '),
        ]),
        [
          '10 routes, 10,000 routes',
          `${routes10} rps, ${routes10000} rps (ratio ${result.routing_cost_ratio})`,
        ],
        [`p50 / p99 at ${options.rate} rps, bare proxy`, `${bareLatency.p50} ms / ${bareLatency.p99} ms`],
        [`p50 at ${options.rate} rps, per round`, `${plainP50.join(', ')} ms`],
        [`p99 at ${options.rate} rps, per round`, `${plainP99.join(', ')} ms`],
        ['the same with a Redis-backed limit', `${limitedP99.join(', ')} ms`],
        ['the limit adds (median p99)', `${result.ratelimit_added_p99_ms} ms`],
      ],
      options.json ?? false,
    );
  } finally {
    await federation?.stop();
    for (const child of children) child.kill('SIGTERM');
    await redis.dispose();
    await nats.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
