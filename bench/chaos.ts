// Chaos: three faults under a fixed cross-cluster load, on a federation of real processes
// (NATS, a controller and an east-west gateway per cluster, a sample app and sidecars in
// file mode). 1) each controller killed with SIGKILL and restarted; 2) the catalog bucket
// wiped (every key deleted, then purged and rolled up where the bucket allows it) and the
// time until every controller's own keys are back; 3) NATS stopped for a while. Failed
// requests are counted in each fault's window; the baseline is the same load before any.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { CATALOG_BUCKET, exportKey, signerKey } from '@causeway/catalog';
import { exportedService, LocalFederation } from '@causeway/cli/local-federation';
import { SteadyLoad, type LoadSummary } from '@causeway/cli/steady-load';
import { startNats } from '@causeway/testing';
import { report } from './report.ts';

const CART = 'cart.shop.svc.clusterset.local';
const CLUSTERS = ['east', 'west'] as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number): number => Math.round(ms / 100) / 10;

/** Polls `check` every 100 ms until it holds; the time it took, in ms. */
async function timeUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
  return Date.now() - started;
}

export async function chaosBench(options: {
  json?: boolean;
  rate: number;
  natsOutageSeconds: number;
  /** Make the catalog bucket first, as older releases did, so that purges and rollups go through. */
  unsafeBucket?: boolean;
}): Promise<void> {
  const nats = await startNats();
  if (options.unsafeBucket) {
    const setup = await connect({ servers: nats.url });
    await new Kvm(setup).create(CATALOG_BUCKET, { history: 5 });
    await setup.close();
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-bench-chaos-'));
  let federation: LocalFederation | undefined;
  let load: SteadyLoad | undefined;
  let connection: NatsConnection | undefined;
  const progress = (line: string) => process.stderr.write(`chaos: ${line}\n`);
  try {
    federation = await LocalFederation.start({
      dir,
      natsUrl: nats.url,
      clusters: CLUSTERS,
      stderr: 'ignore',
      // The demo's settings.
      workloadGrace: '1s',
    });
    await federation.apply('east', 'cart.yaml', exportedService('shop', 'cart', 80, 'http'));
    await federation.startSampleWorkload('east', 'shop', 'cart', 'http');
    const client = await federation.startSidecar('west', {
      namespace: 'shop',
      serviceAccount: 'web',
      accessLog: false,
    });
    await timeUntil(
      async () => {
        const probe = SteadyLoad.start({ port: client.outboundPort, authority: CART, ratePerSecond: 20 });
        await sleep(300);
        const summary = await probe.stop();
        return summary.sent > 0 && summary.failed === 0;
      },
      30_000,
      'west reaching cart in east',
    );
    load = SteadyLoad.start({ port: client.outboundPort, authority: CART, ratePerSecond: options.rate });
    const baselineFrom = Date.now();
    await sleep(5_000);
    await load.settled();
    const baseline = load.summary(baselineFrom);
    progress(`baseline: ${baseline.sent} requests, ${baseline.failed} failed, p99 ${baseline.p99Ms} ms`);

    // 1. Each controller killed and restarted; the window ends once its proxies are back, plus 2 s.
    const restartFrom = Date.now();
    for (const cluster of CLUSTERS) {
      await federation.restartController(cluster, { awaitProxies: true });
      await sleep(2_000);
      progress(`${cluster}'s controller killed and restarted`);
    }
    await load.settled();
    const restart = load.summary(restartFrom);

    // 2. The catalog bucket wiped; every controller's signer and records must come back.
    connection = await connect({ servers: nats.url, name: 'causeway-bench-chaos' });
    const kv = await new Kvm(connection).open(CATALOG_BUCKET);
    const own = CLUSTERS.map((cluster) => signerKey(cluster)).concat(exportKey('east', 'shop', 'cart'));
    const config = (await (await jetstreamManager(connection)).streams.info(`KV_${CATALOG_BUCKET}`)).config;
    const wipeFrom = Date.now();
    const methods = ['delete every key'];
    for await (const key of await kv.keys()) await kv.delete(key);
    if (!config.deny_purge) {
      for (const key of own) await kv.purge(key).catch(() => {});
      methods.push('purge');
    }
    if (config.allow_rollup_hdrs) {
      const rollup = headers();
      rollup.set('Nats-Rollup', 'all');
      await jetstream(connection).publish(`$KV.${CATALOG_BUCKET}.junk`, 'x', { headers: rollup });
      methods.push('rollup of the whole bucket');
    }
    const repairMs = await timeUntil(
      async () => {
        for (const key of own) if ((await kv.get(key))?.operation !== 'PUT') return false;
        return true;
      },
      60_000,
      'the catalog repaired',
    );
    progress(`bucket wiped (${methods.join(', ')}): every own key back in ${seconds(repairMs)} s`);
    await sleep(2_000);
    await load.settled();
    const wipe = load.summary(wipeFrom);
    await connection.close();
    connection = undefined;

    // 3. NATS stopped: both controllers must say so within 5 s; no request may fail.
    const outageFrom = Date.now();
    await nats.stop();
    const stoppedAt = Date.now();
    const detectMs = Math.max(
      ...(await Promise.all(
        CLUSTERS.map((cluster) =>
          timeUntil(
            async () => {
              const status = (await (
                await fetch(`${federation!.cluster(cluster).controller.adminUrl}/debug/catalog`)
              ).json()) as { nats?: { connected: boolean } };
              return status.nats?.connected === false;
            },
            30_000,
            `${cluster} reporting NATS down`,
          ),
        ),
      )),
    );
    progress(`NATS stopped: reported by both controllers after ${seconds(detectMs)} s`);
    await sleep(Math.max(0, options.natsOutageSeconds * 1_000 - (Date.now() - stoppedAt)));
    await nats.restart();
    const reconnectMs = await timeUntil(
      async () => {
        for (const cluster of CLUSTERS) {
          const status = (await (
            await fetch(`${federation!.cluster(cluster).controller.adminUrl}/debug/catalog`)
          ).json()) as { nats?: { connected: boolean } };
          if (status.nats?.connected !== true) return false;
        }
        return true;
      },
      60_000,
      'controllers reconnecting to NATS',
    );
    progress(
      `NATS back after ${options.natsOutageSeconds} s: both controllers reconnected in ${seconds(reconnectMs)} s`,
    );
    await sleep(2_000);
    await load.settled();
    const outage = load.summary(outageFrom);
    const total = await load.stop();
    load = undefined;

    const result = {
      bench: 'chaos',
      rate_rps: options.rate,
      baseline_failed: baseline.failed,
      baseline_p99_ms: baseline.p99Ms,
      controller_restart_failed: restart.failed,
      controller_restart_sent: restart.sent,
      controller_restart_p99_ms: restart.p99Ms,
      bucket_wipe: methods,
      bucket_repair_s: seconds(repairMs),
      bucket_wipe_failed: wipe.failed,
      nats_outage_s: options.natsOutageSeconds,
      nats_outage_failed: outage.failed,
      nats_outage_sent: outage.sent,
      nats_status_detect_s: seconds(detectMs),
      nats_reconnect_s: seconds(reconnectMs),
      total_sent: total.sent,
      total_failed: total.failed,
    };
    const line = (summary: LoadSummary) =>
      `${summary.failed} failed of ${summary.sent}, p99 ${summary.p99Ms} ms${summary.failures.length ? ` (first: ${summary.failures[0]})` : ''}`;
    report(
      result,
      [
        ['load', `${options.rate} requests/s from west's sidecar to ${CART} (only east has it)`],
        ['baseline', line(baseline)],
        ['controller SIGKILL + restart', line(restart)],
        ['bucket wiped', `${methods.join(', ')}; back in ${seconds(repairMs)} s; ${line(wipe)}`],
        [
          `NATS stopped ${options.natsOutageSeconds} s`,
          `detected in ${seconds(detectMs)} s; reconnected in ${seconds(reconnectMs)} s; ${line(outage)}`,
        ],
        ['goals', '0 failed in each fault, repair < 10 s, detection <= 5 s'],
      ],
      options.json ?? false,
    );
  } finally {
    await load?.stop();
    await connection?.close().catch(() => {});
    await federation?.stop();
    await nats.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
