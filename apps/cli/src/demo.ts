import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startEnvironment, type Environment } from '@causeway/testing';
import { exportedService, LocalFederation, pathPolicy, type SidecarProcess } from './local-federation.ts';
import { grpcEchoClient, type EchoReply, type SampleApp } from './sample-apps.ts';

/** One check of the demo scenario. */
export interface DemoCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DemoResult {
  readonly checks: readonly DemoCheck[];
  readonly ok: boolean;
  readonly clusters: readonly string[];
  readonly durationS: number;
}

const CART = 'cart.shop.svc.clusterset.local';
const TILL = 'till.shop.svc.clusterset.local:9000';
const CALLER = 'spiffe://mesh.local/ns/shop/sa/web';

/** One HTTP call through a sidecar's outbound port. */
function call(port: number, authority: string, requestPath = '/'): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, path: requestPath, headers: { host: authority } },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          response.statusCode === 200
            ? resolve(JSON.parse(body) as EchoReply)
            : reject(new Error(`${response.statusCode} ${body.trim()}`)),
        );
      },
    );
    request.setTimeout(10_000, () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** Tries until it works or the time is up; the last error explains a failure. */
async function until<T>(what: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await what();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * The two-cluster demo, on this machine in file mode: NATS, a trust root and two
 * intermediates, per cluster a federation controller and an east-west gateway; `cart`
 * (HTTP) and `till` (gRPC) exported from east, a client (`web`) in west. Checks that
 * cross-cluster HTTP and gRPC work, that the server sees the caller's SPIFFE ID, and that
 * when a local `cart` instance in west is stopped while requests flow, every request
 * still succeeds (through east) and traffic returns when it is back.
 */
export class Demo {
  private env: Environment | undefined;
  private federation: LocalFederation | undefined;
  private dir: string | undefined;
  private client: SidecarProcess | undefined;
  private westCart: { app: SampleApp; sidecar: SidecarProcess } | undefined;
  readonly checks: DemoCheck[] = [];

  constructor(
    private readonly say: (line: string) => void,
    /** `L7`: every demo service gets a path rule (allowing all), so the sidecars serve it per request. */
    private readonly mode: 'auto' | 'L7' = 'auto',
  ) {}

  async start(): Promise<void> {
    this.say('starting NATS...');
    this.env = await startEnvironment({ nats: true });
    this.dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-demo-'));
    this.say(
      'creating the trust root and intermediates; starting controllers and east-west gateways for east and west...',
    );
    this.federation = await LocalFederation.start({
      dir: this.dir,
      natsUrl: this.env.nats!.url,
      clusters: ['east', 'west'],
      heartbeatInterval: '500ms',
      workloadGrace: '1s',
      stderr: 'ignore',
    });
    await this.federation.apply(
      'east',
      'shop.yaml',
      [
        exportedService('shop', 'cart', 80, 'http'),
        exportedService('shop', 'till', 9000, 'grpc', 'grpc'),
        ...(this.mode === 'L7'
          ? [
              pathPolicy('shop', 'cart-l7', 'cart', 'ALLOW', ['/*']),
              pathPolicy('shop', 'till-l7', 'till', 'ALLOW', ['/*']),
            ]
          : []),
      ].join('---\n'),
    );
    await this.federation.apply(
      'west',
      'shop.yaml',
      [
        exportedService('shop', 'cart', 80, 'http'),
        ...(this.mode === 'L7' ? [pathPolicy('shop', 'cart-l7', 'cart', 'ALLOW', ['/*'])] : []),
      ].join('---\n'),
    );
    if (this.mode === 'L7')
      this.say('L7: every service has a path rule, so each request is authorized on its own');
    this.say(
      'starting sample workloads behind sidecars: east/cart (HTTP), east/till (gRPC), west/web (client)...',
    );
    await this.workload('east', 'cart', 'http');
    await this.workload('east', 'till', 'grpc');
    this.client = await this.federation.startSidecar('west', { namespace: 'shop', serviceAccount: 'web' });
  }

  private workload(cluster: string, name: string, kind: 'http' | 'grpc') {
    return this.federation!.startSampleWorkload(cluster, 'shop', name, kind);
  }

  private check(name: string, ok: boolean, detail: string): void {
    this.checks.push({ name, ok, detail });
    this.say(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
  }

  /** The scenario; each check is recorded, a failure does not stop the others. */
  async run(): Promise<void> {
    const port = this.client!.outboundPort;
    let seenCaller: string | undefined;
    try {
      const reply = await until(() => call(port, CART, '/hello'), 60_000);
      seenCaller = reply.caller;
      this.check(
        'cross-cluster-http',
        reply.cluster === 'east',
        `west/web -> http://${CART}/hello answered by ${reply.instance} in ${reply.cluster}`,
      );
    } catch (error) {
      this.check('cross-cluster-http', false, `west/web -> ${CART}: ${(error as Error).message}`);
    }
    const echo = grpcEchoClient(port, TILL);
    try {
      const reply = await until(() => echo.say('hello over gRPC'), 30_000);
      this.check(
        'cross-cluster-grpc',
        reply.cluster === 'east' && reply.message === 'hello over gRPC',
        `west/web -> ${TILL} causeway.demo.Echo/Say answered by ${reply.instance} in ${reply.cluster}`,
      );
      // In L7 the HTTP server hears the caller from its sidecar too (in L4 only gRPC's does).
      if (this.mode !== 'L7') seenCaller ??= reply.caller;
      this.check(
        'mtls-identity',
        reply.caller === CALLER && seenCaller === CALLER,
        `the servers in east saw the caller as ${reply.caller ?? 'nobody'} (expected ${CALLER})`,
      );
    } catch (error) {
      this.check('cross-cluster-grpc', false, `west/web -> ${TILL}: ${(error as Error).message}`);
      this.check('mtls-identity', false, 'no gRPC answer to read the caller from');
    } finally {
      echo.close();
    }
    await this.failover(port);
  }

  /** A local cart in west takes the traffic; stopped mid-stream, east takes over; back, west again. */
  private async failover(port: number): Promise<void> {
    this.say('starting a local cart in west: traffic should prefer it...');
    this.westCart = await this.workload('west', 'cart', 'http');
    try {
      await until(async () => {
        const reply = await call(port, CART);
        if (reply.cluster !== 'west') throw new Error(`still answered by ${reply.cluster}`);
      }, 30_000);
    } catch (error) {
      this.check('failover', false, `the local cart never took the traffic: ${(error as Error).message}`);
      return;
    }
    const counts = { west: 0, east: 0 };
    const failures: string[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        const batch = await Promise.allSettled(Array.from({ length: 4 }, () => call(port, CART)));
        for (const outcome of batch) {
          if (outcome.status === 'fulfilled') counts[outcome.value.cluster === 'west' ? 'west' : 'east']++;
          else failures.push(String(outcome.reason));
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const before = { ...counts };
    this.say(
      `stopping west's cart (its sidecar and app) while requests flow (${before.west} served locally so far)...`,
    );
    await this.westCart.sidecar.stop();
    await this.westCart.app.close();
    await until(async () => {
      if (counts.east < before.east + 20)
        throw new Error(`only ${counts.east - before.east} answers from east`);
    }, 30_000).catch(() => {});
    const duringOutage = counts.east - before.east;
    this.say(`east answered ${duringOutage} requests; starting west's cart again...`);
    this.westCart = await this.workload('west', 'cart', 'http');
    const westAtRestart = counts.west;
    const returned = await until(async () => {
      if (counts.west < westAtRestart + 20) throw new Error('traffic has not returned to west');
    }, 30_000).then(
      () => true,
      () => false,
    );
    running = false;
    await traffic;
    const total = counts.west + counts.east + failures.length;
    this.check(
      'failover',
      failures.length === 0 && duringOutage >= 20 && returned,
      `${total} requests while west's cart was stopped and restarted: ${counts.west} answered in west, ${counts.east} in east, ${failures.length} failed${returned ? '; traffic returned to west' : '; traffic did NOT return to west'}${failures.length > 0 ? ` (first failure: ${failures[0]})` : ''}`,
    );
  }

  /** A line of live traffic: where `cart` is answered from, over about a second. */
  async sample(): Promise<string> {
    const port = this.client!.outboundPort;
    const replies = await Promise.allSettled(Array.from({ length: 10 }, () => call(port, CART)));
    const by = new Map<string, number>();
    let failed = 0;
    for (const reply of replies) {
      if (reply.status === 'fulfilled') by.set(reply.value.instance, (by.get(reply.value.instance) ?? 0) + 1);
      else failed++;
    }
    const answered = [...by].map(([instance, count]) => `${instance} ${count}`).join(', ');
    return `west/web -> ${CART}: ${answered || 'no answer'}${failed ? `, ${failed} failed` : ''}`;
  }

  result(startedAt: number): DemoResult {
    return {
      checks: this.checks,
      ok: this.checks.length > 0 && this.checks.every((check) => check.ok),
      clusters: ['east', 'west'],
      durationS: Math.round((Date.now() - startedAt) / 100) / 10,
    };
  }

  /** Stops every process and server the demo started. */
  async stop(): Promise<void> {
    await this.federation?.stop();
    await this.env?.dispose();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** `causeway demo`: the scenario, then (without `--once`) a live view until Ctrl-C. */
export async function runDemo(options: {
  once: boolean;
  json: boolean;
  mode?: 'auto' | 'L7';
}): Promise<number> {
  const startedAt = Date.now();
  const say = (line: string): void => void process.stderr.write(`causeway demo: ${line}\n`);
  const demo = new Demo(say, options.mode ?? 'auto');
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= demo.stop());
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('stopping every process...');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await demo.start();
    if (!interrupted) await demo.run();
    const result = demo.result(startedAt);
    if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else
      process.stdout.write(
        `\n${result.checks.map((check) => `${check.ok ? 'PASS' : 'FAIL'}  ${check.name.padEnd(19)} ${check.detail}`).join('\n')}\n\n`,
      );
    if (!options.once && !interrupted) {
      say('live view of west/web calling cart every second; stop a workload or press Ctrl-C to end');
      while (!interrupted) {
        // With --json, stdout holds the JSON object alone.
        (options.json ? process.stderr : process.stdout).write(
          `${new Date().toISOString().slice(11, 19)}  ${await demo.sample()}\n`,
        );
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
    await stop();
    say('stopped; no process left behind.');
    return result.ok ? 0 : 1;
  } catch (error) {
    say(`the demo failed: ${error instanceof Error ? error.message : String(error)}`);
    await stop();
    if (options.json)
      process.stdout.write(
        `${JSON.stringify({ ...demo.result(startedAt), ok: false, error: String(error) })}\n`,
      );
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
