// The sidecar hop measured six ways in one run: client -> app directly; through two
// Causeway sidecars (outbound -> mTLS -> inbound) in L4 mode (the service `app`: HBONE
// tunnels) and in L7 mode (the service `app-l7`, a workload of its own in front of the same
// app, with a path rule that makes every request authorized on its own), and in L7 under a
// TrafficPolicy with retries, timeouts, outlier detection and a circuit breaker (the service
// `app-policy`, nothing failing: what the policy costs); through two nginx
// instances configured as the same mTLS proxy pair; through the plainest such pair Node's own
// modules make (bench/node-proxy.mjs: what any Node.js data plane starts from). Latency at a
// fixed rate (open loop: each request is timed from when it was due, so a stall is not
// hidden), throughput at saturation (wrk), sidecar RSS. Then unary gRPC calls (grpc-js) to a
// gRPC app directly, through L4 and through L7 (the app's grpc_proxy is the sidecar).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { exportedService, LocalFederation, pathPolicy } from '@causeway/cli/local-federation';
import { grpcEchoClient } from '@causeway/cli/sample-apps';
import { freePort, repoRoot, startNats, withEnv } from '@causeway/testing';
import { report } from './report.ts';

interface HopFigures {
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_rps: number;
  /** Requests that failed or took over 5 s at the fixed rate. */
  errors: number;
  /** The largest RSS among the proxy processes of the hop while at the fixed rate. */
  rss_mb?: number;
  /** The largest private (unshared) memory of one of the hop's processes under the fixed rate. */
  private_mb?: number;
  /** CPU time the hop's processes (both proxies; the app for `direct`) spent per request at saturation. */
  cpu_us_per_request: number;
  /**
   * Share of the machine's CPU time taken by its hypervisor from it (steal) during the
   * saturation run: above a few percent the figures of that run say less.
   */
  steal_pct: number;
}

const say = (line: string): void => void process.stderr.write(`bench sidecar: ${line}\n`);

/** nginx and wrk from Debian, installed when missing (without starting nginx as a service). */
export function ensurePackages(): void {
  const missing = ['nginx', 'wrk'].filter((tool) => {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(`install ${missing.join(' and ')} (Debian packages) and run again`);
  say(`installing ${missing.join(', ')} with apt-get...`);
  // A policy that keeps the package from starting nginx as a system service.
  const policy = '/usr/sbin/policy-rc.d';
  const ours = !existsSync(policy);
  if (ours) execFileSync('sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' > ${policy} && chmod +x ${policy}`]);
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    execFileSync(
      'env',
      [
        'DEBIAN_FRONTEND=noninteractive',
        'apt-get',
        'install',
        '-y',
        '-qq',
        '--no-install-recommends',
        ...missing,
      ],
      { stdio: 'ignore' },
    );
  } finally {
    if (ours) execFileSync('rm', ['-f', policy]);
  }
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** Open-loop load at a fixed rate; latency from each request's due time. */
export async function fixedRate(
  port: number,
  host: string,
  rate: number,
  seconds: number,
  onTick?: () => void,
  pathname = '/',
): Promise<{ p50: number; p90: number; p99: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  const latencies: number[] = [];
  let errors = 0;
  const total = rate * seconds;
  const start = performance.now() + 50;
  const interval = 1000 / rate;
  const pending: Array<Promise<void>> = [];
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      while (next < total && start + next * interval <= now) {
        const due = start + next * interval;
        next++;
        pending.push(
          new Promise<void>((done) => {
            const request = http.get(
              { host: '127.0.0.1', port, path: pathname, agent, headers: { host } },
              (response) => {
                response.resume();
                response.once('end', () => {
                  if (response.statusCode === 200) latencies.push(performance.now() - due);
                  else errors++;
                  done();
                });
              },
            );
            request.setTimeout(5_000, () => request.destroy(new Error('timed out')));
            request.once('error', () => {
              errors++;
              done();
            });
          }),
        );
      }
      onTick?.();
      if (next >= total) resolve();
      else setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
    };
    tick();
  });
  // What has not answered 10 s after the last request was due counts as failed.
  let giveUp: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    Promise.all(pending).then(() => true),
    new Promise<boolean>((resolve) => (giveUp = setTimeout(() => resolve(false), 10_000))),
  ]);
  clearTimeout(giveUp);
  if (!settled) errors += total - latencies.length - errors;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    p50: round(percentile(latencies, 50)),
    p90: round(percentile(latencies, 90)),
    p99: round(percentile(latencies, 99)),
    errors,
  };
}

/**
 * Requests per second at saturation, and how many were made: wrk, 1 thread, 32 connections.
 * (Not run synchronously: this process reads the components' logs meanwhile, and a component
 * writing to a full pipe would wait.)
 */
export async function saturation(
  port: number,
  host: string,
  seconds: number,
  pathname = '/',
): Promise<{ rps: number; requests: number }> {
  const { stdout: output } = await promisify(execFile)(
    'wrk',
    ['-t1', '-c32', `-d${seconds}s`, '-H', `Host: ${host}`, `http://127.0.0.1:${port}${pathname}`],
    { encoding: 'utf8' },
  );
  const match = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!match) throw new Error(`wrk printed no rate:\n${output}`);
  if (/Non-2xx or 3xx responses: (\d+)/.test(output)) throw new Error(`errors at saturation:\n${output}`);
  const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  return { rps: Math.round(Number(match[1])), requests };
}

/** A process and its children (nginx: the master and its workers). */
export const withChildren = async (pid: number): Promise<number[]> => {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return [pid, ...children.split(' ').filter(Boolean).map(Number)];
};

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system) the processes have used so far, in seconds. */
/** The machine's CPU time counters (all, and stolen by the hypervisor), in ticks. */
async function machineTicks(): Promise<{ total: number; steal: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is within user already).
  const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return { total, steal: fields[7] ?? 0 };
}

export async function cpuSeconds(pids: readonly number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS;
}

/**
 * A process's resident memory (MB): all of it (`rss`, which counts the pages of its program
 * file that every process running that program shares), and what is its own alone
 * (`private`: private clean and dirty pages).
 */
const memoryMb = async (pid: number): Promise<{ rss: number; private: number }> => {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? 0);
  return {
    rss: Math.round(kb('Rss') / 1024),
    private: Math.round((kb('Private_Clean') + kb('Private_Dirty')) / 1024),
  };
};

/** The app: 1 KiB per response, in its own process. */
/** The sample gRPC echo service (grpc-js, HTTP/2 cleartext) in a process of its own. */
async function startGrpcApp(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { startGrpcEcho } from '@causeway/cli/sample-apps';
       const app = await startGrpcEcho({ service: 'grpc', cluster: 'bench', instance: 'grpc-0' });
       console.log(app.port);`,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk) => resolve(Number(String(chunk).trim())));
    child.once('exit', (code) => reject(new Error(`the gRPC app exited (${code})`)));
  });
  return { child, port };
}

interface GrpcFigures {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
}

/**
 * Unary gRPC calls (`causeway.demo.Echo/Say`, grpc-js) from this process, 32 in flight on one
 * channel, for `seconds`: calls per second and latency. `proxy`: the channel dials the service
 * by its name through the sidecar (grpc_proxy: an HTTP CONNECT, as grpc-js does it).
 */
async function grpcLoad(
  target: { port: number; authority: string; proxy: boolean },
  seconds: number,
): Promise<GrpcFigures> {
  // grpc-js reads the proxy when the channel is made.
  const echo = withEnv({ grpc_proxy: target.proxy ? `http://127.0.0.1:${target.port}` : undefined }, () =>
    grpcEchoClient(
      target.port,
      target.authority,
      target.proxy ? target.authority : `127.0.0.1:${target.port}`,
    ),
  );
  try {
    for (let i = 0; i < 200; i++) await echo.say('warm-up');
    const latencies: number[] = [];
    let errors = 0;
    const until = performance.now() + seconds * 1000;
    const worker = async (): Promise<void> => {
      while (performance.now() < until) {
        const started = performance.now();
        try {
          await echo.say('bench');
          latencies.push(performance.now() - started);
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    latencies.sort((a, b) => a - b);
    const at = (q: number) =>
      Math.round((latencies[Math.floor(q * (latencies.length - 1))] ?? 0) * 1000) / 1000;
    return { rps: Math.round(latencies.length / seconds), p50_ms: at(0.5), p99_ms: at(0.99), errors };
  } finally {
    echo.close();
  }
}

export async function startApp(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const body = Buffer.alloc(1024, 120);
       const server = require('node:http').createServer((q, s) => { s.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1024 }); s.end(body); });
       server.keepAliveTimeout = 60000;
       server.listen(0, '127.0.0.1', () => console.log(server.address().port));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) =>
    child.stdout!.once('data', (chunk) => resolve(Number(String(chunk).trim()))),
  );
  return { child, port };
}

/**
 * Mesh certificates for a proxy pair, `<name>-a` (front) and `<name>-b` (back; its
 * certificate's CN is `<name>-b.bench`), the root file, and a port for each side.
 */
async function proxyPair(federation: LocalFederation, name: string) {
  const trust = federation.trust;
  const issue = (side: string) =>
    trust.issueWorkload({ cluster: 'bench', namespace: 'bench', serviceAccount: `${name}-${side}` });
  return {
    a: (await issue('a')).files,
    b: (await issue('b')).files,
    root: trust.rootFiles('root-1').certificate,
    front: await freePort(),
    back: await freePort(),
  };
}

async function startNginxPair(
  dir: string,
  federation: LocalFederation,
  appPort: number,
): Promise<{ children: ChildProcess[]; port: number }> {
  const { a, b, root, front, back } = await proxyPair(federation, 'nginx');
  const common = (name: string) => `daemon off; master_process on; worker_processes 1; user root;
pid ${dir}/${name}.pid; error_log ${dir}/${name}-error.log warn;
events { worker_connections 4096; }`;
  const temp = (name: string) =>
    ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
      .map((kind) => `${kind}_temp_path ${dir}/${name}-${kind};`)
      .join(' ');
  await writeFile(
    path.join(dir, 'nginx-a.conf'),
    `${common('nginx-a')}
http { access_log off; ${temp('nginx-a')}
  upstream peer { server 127.0.0.1:${back}; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:${front}; keepalive_requests 1000000;
    location / {
      proxy_pass https://peer; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate ${a.certificate}; proxy_ssl_certificate_key ${a.privateKey};
      proxy_ssl_trusted_certificate ${root}; proxy_ssl_verify on; proxy_ssl_verify_depth 3;
      proxy_ssl_name nginx-b.bench; proxy_ssl_protocols TLSv1.3; proxy_ssl_session_reuse on;
    } } }
`,
  );
  await writeFile(
    path.join(dir, 'nginx-b.conf'),
    `${common('nginx-b')}
http { access_log off; ${temp('nginx-b')}
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:${back} ssl; keepalive_requests 1000000;
    ssl_certificate ${b.certificate}; ssl_certificate_key ${b.privateKey};
    ssl_client_certificate ${root}; ssl_verify_client on; ssl_verify_depth 3; ssl_protocols TLSv1.3;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const children = ['nginx-a', 'nginx-b'].map((name) =>
    spawn('nginx', ['-p', dir, '-c', path.join(dir, `${name}.conf`)], {
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
  // Ready when a request goes through the pair.
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) =>
      http
        .get({ host: '127.0.0.1', port: front, path: '/' }, (r) => resolve(r.statusCode === 200))
        .on('error', () => resolve(false)),
    );
    if (ok) return { children, port: front };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the nginx pair did not answer; see ${dir}/nginx-*-error.log`);
}

/** The plainest mTLS proxy pair Node's own modules make (bench/node-proxy.mjs), one process per side. */
async function startNodePair(
  federation: LocalFederation,
  appPort: number,
): Promise<{ children: ChildProcess[]; port: number }> {
  const { a, b, root, front, back } = await proxyPair(federation, 'node');
  const script = path.join(repoRoot, 'bench/node-proxy.mjs');
  const start = async (args: string[]): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`bench/node-proxy.mjs ${args[0]} exited (${code})`)));
    });
    return child;
  };
  const children = [
    await start(['back', String(back), String(appPort), b.certificate, b.privateKey, root]),
    await start(['front', String(front), String(back), a.certificate, a.privateKey, root, 'node-b.bench']),
  ];
  return { children, port: front };
}

export async function sidecarBench(options: {
  json?: boolean;
  rate: number;
  seconds: number;
  /** Start the hops, print where they listen and their processes, and wait for Ctrl-C (for profiling). */
  hold?: boolean;
}): Promise<void> {
  ensurePackages();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-bench-sidecar-'));
  const nats = await startNats();
  const children: ChildProcess[] = [];
  let federation: LocalFederation | undefined;
  try {
    const app = await startApp();
    children.push(app.child);
    say('building the components (npm run build), to measure what is deployed...');
    execFileSync(process.execPath, [path.join(repoRoot, 'scripts/build.mjs')], { stdio: 'ignore' });
    say('starting a controller and two sidecars (client side and app side)...');
    federation = await LocalFederation.start({
      dir: path.join(dir, 'mesh'),
      natsUrl: nats.url,
      clusters: ['bench'],
      stderr: 'ignore',
      built: true,
    });
    await federation.apply(
      'bench',
      'app.yaml',
      [
        exportedService('bench', 'app', 80, 'http'),
        exportedService('bench', 'app-l7', 80, 'http'),
        pathPolicy('bench', 'app-l7-paths', 'app-l7', 'ALLOW', ['/*']),
        exportedService('bench', 'app-policy', 80, 'http'),
        pathPolicy('bench', 'app-policy-paths', 'app-policy', 'ALLOW', ['/*']),
        // Every request-level setting in force, nothing failing: what the policy costs.
        `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: app-policy, namespace: bench }
spec:
  targetRefs: [{ group: '', kind: Service, name: app-policy }]
  timeouts: { request: 10s }
  retries: { attempts: 2, perTryTimeout: 5s, retryOn: [5xx, connect-failure, reset] }
  outlierDetection: { consecutive5xxErrors: 5, baseEjectionTime: 30s, maxEjectionPercent: 50 }
  circuitBreaker: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 64 }
`,
        exportedService('bench', 'grpc', 9000, 'grpc', 'grpc'),
        exportedService('bench', 'grpc-l7', 9000, 'grpc', 'grpc'),
        pathPolicy('bench', 'grpc-l7-paths', 'grpc-l7', 'ALLOW', ['/causeway.demo.Echo/*']),
      ].join('---\n'),
    );
    /** A server-side sidecar for workload `<name>-0` (label `app: <name>`) in front of an app port. */
    const serverSidecar = (name: string, appPort: number, appProtocol: 'http' | 'h2c') =>
      federation!.startSidecar('bench', {
        namespace: 'bench',
        serviceAccount: name,
        workload: { name: `${name}-0`, labels: { app: name } },
        inbound: [{ name: appProtocol === 'h2c' ? 'grpc' : 'http', appPort, appProtocol }],
        accessLog: false,
      });
    const server = await serverSidecar('app', app.port, 'http');
    // The L7 service has a workload of its own in front of the same app: a port's mode is
    // decided by every Service it serves, and this one needs L7.
    const serverL7 = await serverSidecar('app-l7', app.port, 'http');
    const serverPolicy = await serverSidecar('app-policy', app.port, 'http');
    const grpcApp = await startGrpcApp();
    children.push(grpcApp.child);
    for (const name of ['grpc', 'grpc-l7']) await serverSidecar(name, grpcApp.port, 'h2c');
    const client = await federation.startSidecar('bench', {
      namespace: 'bench',
      serviceAccount: 'client',
      accessLog: false,
    });
    const host = 'app.bench.svc.clusterset.local';
    const hostL7 = 'app-l7.bench.svc.clusterset.local';
    const hostPolicy = 'app-policy.bench.svc.clusterset.local';
    for (const name of [host, hostL7, hostPolicy])
      for (let i = 0; ; i++) {
        const ok = await new Promise<boolean>((resolve) =>
          http
            .get(
              { host: '127.0.0.1', port: client.outboundPort, path: '/', headers: { host: name } },
              (r) => {
                r.resume();
                resolve(r.statusCode === 200);
              },
            )
            .on('error', () => resolve(false)),
        );
        if (ok) break;
        if (i > 300) throw new Error(`the sidecars never routed ${name} to the app`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    await mkdir(path.join(dir, 'nginx'), { recursive: true });
    const nginx = await startNginxPair(path.join(dir, 'nginx'), federation, app.port);
    children.push(...nginx.children);

    const nodePair = await startNodePair(federation, app.port);
    children.push(...nodePair.children);

    const hops: Record<
      'direct' | 'causeway' | 'causeway_l7' | 'causeway_l7_policy' | 'nginx' | 'node_proxy',
      { port: number; host: string }
    > = {
      direct: { port: app.port, host: 'app' },
      causeway: { port: client.outboundPort, host },
      causeway_l7: { port: client.outboundPort, host: hostL7 },
      causeway_l7_policy: { port: client.outboundPort, host: hostPolicy },
      nginx: { port: nginx.port, host: 'app' },
      node_proxy: { port: nodePair.port, host: 'app' },
    };
    if (options.hold) {
      const pids = {
        direct: [app.child.pid],
        causeway: [client.child.pid, server.child.pid],
        causeway_l7: [client.child.pid, serverL7.child.pid],
        causeway_l7_policy: [client.child.pid, serverPolicy.child.pid],
        nginx: (await Promise.all(nginx.children.map((c) => withChildren(c.pid!)))).flat(),
        node_proxy: nodePair.children.map((c) => c.pid),
      };
      for (const [name, hop] of Object.entries(hops))
        say(
          `${name}: 127.0.0.1:${hop.port} Host ${hop.host} (processes ${pids[name as keyof typeof pids].join(' ')})`,
        );
      say('holding: press Ctrl-C to stop');
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
      return;
    }
    const figures = {} as Record<keyof typeof hops, HopFigures>;
    for (const [name, hop] of Object.entries(hops) as Array<
      [keyof typeof hops, { port: number; host: string }]
    >) {
      say(`${name}: warming up, then ${options.rate} rps for ${options.seconds} s...`);
      await fixedRate(hop.port, hop.host, options.rate, 2);
      let rss = 0;
      let own = 0;
      const pids = {
        direct: [app.child.pid!],
        causeway: [client.child.pid!, server.child.pid!],
        causeway_l7: [client.child.pid!, serverL7.child.pid!],
        causeway_l7_policy: [client.child.pid!, serverPolicy.child.pid!],
        nginx: (await Promise.all(nginx.children.map((c) => withChildren(c.pid!)))).flat(),
        node_proxy: nodePair.children.map((c) => c.pid!),
      }[name];
      const sampleRss = (): void => {
        if (name === 'direct') return;
        void Promise.all(pids.map(memoryMb)).then((values) => {
          rss = Math.max(rss, ...values.map((value) => value.rss));
          own = Math.max(own, ...values.map((value) => value.private));
        });
      };
      const latency = await fixedRate(hop.port, hop.host, options.rate, options.seconds, sampleRss);
      if (latency.errors > 0)
        say(`${name}: ${latency.errors} requests failed or timed out (5 s) at ${options.rate} rps`);
      say(`${name}: saturation with wrk (32 connections, ${options.seconds} s)...`);
      const cpuBefore = await cpuSeconds(pids);
      const machineBefore = await machineTicks();
      const max = await saturation(hop.port, hop.host, options.seconds);
      const cpu = (await cpuSeconds(pids)) - cpuBefore;
      const machineAfter = await machineTicks();
      const ticks = machineAfter.total - machineBefore.total;
      const steal = ticks > 0 ? (machineAfter.steal - machineBefore.steal) / ticks : 0;
      if (steal > 0.05)
        say(`${name}: the hypervisor took ${Math.round(steal * 100)}% of the CPU time during saturation`);
      figures[name] = {
        p50_ms: latency.p50,
        p90_ms: latency.p90,
        p99_ms: latency.p99,
        max_rps: max.rps,
        errors: latency.errors,
        ...(name === 'direct' ? {} : { rss_mb: rss, private_mb: own }),
        cpu_us_per_request: Math.round((cpu / max.requests) * 1e6),
        steal_pct: Math.round(steal * 1000) / 10,
      };
    }
    const grpcHops = {
      direct: { port: grpcApp.port, authority: 'grpc', proxy: false },
      causeway: { port: client.outboundPort, authority: 'grpc.bench.svc.clusterset.local:9000', proxy: true },
      causeway_l7: {
        port: client.outboundPort,
        authority: 'grpc-l7.bench.svc.clusterset.local:9000',
        proxy: true,
      },
    };
    const grpcFigures = {} as Record<keyof typeof grpcHops, GrpcFigures>;
    for (const [name, target] of Object.entries(grpcHops) as Array<
      [keyof typeof grpcHops, (typeof grpcHops)['direct']]
    >) {
      say(`gRPC ${name}: unary calls, 32 in flight, ${options.seconds} s...`);
      grpcFigures[name] = await grpcLoad(target, options.seconds);
      if (grpcFigures[name].errors > 0) say(`gRPC ${name}: ${grpcFigures[name].errors} calls failed`);
    }
    const result = {
      bench: 'sidecar',
      rate: options.rate,
      seconds: options.seconds,
      direct: figures.direct,
      causeway: figures.causeway,
      causeway_l7: figures.causeway_l7,
      causeway_l7_policy: figures.causeway_l7_policy,
      nginx: figures.nginx,
      node_proxy: figures.node_proxy,
      added_p99_ms: Math.round((figures.causeway.p99_ms - figures.direct.p99_ms) * 1000) / 1000,
      nginx_added_p99_ms: Math.round((figures.nginx.p99_ms - figures.direct.p99_ms) * 1000) / 1000,
      throughput_ratio_vs_nginx: Math.round((figures.causeway.max_rps / figures.nginx.max_rps) * 100) / 100,
      l7_throughput_ratio_vs_nginx:
        Math.round((figures.causeway_l7.max_rps / figures.nginx.max_rps) * 100) / 100,
      l7_policy_throughput_ratio_vs_nginx:
        Math.round((figures.causeway_l7_policy.max_rps / figures.nginx.max_rps) * 100) / 100,
      l7_policy_throughput_ratio_vs_l7:
        Math.round((figures.causeway_l7_policy.max_rps / figures.causeway_l7.max_rps) * 100) / 100,
      cpu_ratio_vs_nginx:
        Math.round((figures.causeway.cpu_us_per_request / figures.nginx.cpu_us_per_request) * 100) / 100,
      l7_cpu_ratio_vs_nginx:
        Math.round((figures.causeway_l7.cpu_us_per_request / figures.nginx.cpu_us_per_request) * 100) / 100,
      l7_added_p99_ms: Math.round((figures.causeway_l7.p99_ms - figures.direct.p99_ms) * 1000) / 1000,
      node_proxy_added_p99_ms: Math.round((figures.node_proxy.p99_ms - figures.direct.p99_ms) * 1000) / 1000,
      node_proxy_throughput_ratio_vs_nginx:
        Math.round((figures.node_proxy.max_rps / figures.nginx.max_rps) * 100) / 100,
      grpc: grpcFigures,
      grpc_throughput_ratio_vs_direct:
        Math.round((grpcFigures.causeway.rps / grpcFigures.direct.rps) * 100) / 100,
      grpc_l7_throughput_ratio_vs_direct:
        Math.round((grpcFigures.causeway_l7.rps / grpcFigures.direct.rps) * 100) / 100,
    };
    const grpcRow = (name: string, f: GrpcFigures): [string, string] => [
      name,
      `p50 ${f.p50_ms} ms  p99 ${f.p99_ms} ms  ${f.rps} calls/s (32 in flight)`,
    ];
    const row = (name: string, f: HopFigures): [string, string] => [
      name,
      `p50 ${f.p50_ms} ms  p90 ${f.p90_ms} ms  p99 ${f.p99_ms} ms  max ${f.max_rps} rps  CPU ${f.cpu_us_per_request} us/request  steal ${f.steal_pct}%${f.rss_mb !== undefined ? `  RSS ${f.rss_mb} MB (private ${f.private_mb} MB)` : ''}`,
    ];
    report(
      result,
      [
        row('direct', figures.direct),
        row('causeway L4 (2 sidecars, mTLS)', figures.causeway),
        row('causeway L7 (2 sidecars, mTLS)', figures.causeway_l7),
        row('causeway L7 + TrafficPolicy (retries, timeouts, ...)', figures.causeway_l7_policy),
        row('nginx (2 proxies, mTLS)', figures.nginx),
        row('plain Node proxies (2, mTLS)', figures.node_proxy),
        [
          'added p99 at fixed rate',
          `causeway L4 ${result.added_p99_ms} ms, L7 ${result.l7_added_p99_ms} ms, nginx ${result.nginx_added_p99_ms} ms, plain Node ${result.node_proxy_added_p99_ms} ms`,
        ],
        [
          'throughput / nginx',
          `causeway L4 ${result.throughput_ratio_vs_nginx}, L7 ${result.l7_throughput_ratio_vs_nginx}, L7 with a TrafficPolicy ${result.l7_policy_throughput_ratio_vs_nginx} (${result.l7_policy_throughput_ratio_vs_l7} of L7), plain Node ${result.node_proxy_throughput_ratio_vs_nginx}`,
        ],
        [
          'CPU per request / nginx',
          `causeway L4 ${result.cpu_ratio_vs_nginx}, L7 ${result.l7_cpu_ratio_vs_nginx}`,
        ],
        grpcRow('gRPC unary direct', grpcFigures.direct),
        grpcRow('gRPC unary causeway L4', grpcFigures.causeway),
        grpcRow('gRPC unary causeway L7', grpcFigures.causeway_l7),
        [
          'gRPC calls/s / direct',
          `causeway L4 ${result.grpc_throughput_ratio_vs_direct}, L7 ${result.grpc_l7_throughput_ratio_vs_direct}`,
        ],
      ],
      options.json ?? false,
    );
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await federation?.stop();
    await nats.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
