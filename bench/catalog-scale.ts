// Catalog scale: N simulated clusters x M exported services as signed records in real
// NATS, cold-synced into one controller's catalog sync (its own process, so its RSS is its
// own), then a sustained rate of record updates. The Kubernetes writes of the imports are
// not part of this figure (they are bounded by the API server, see the convergence bench).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { signExportRecord, type ExportRecord } from '@causeway/catalog';
import { CatalogBus } from '@causeway/nats';
import { createRootCa } from '@causeway/pki';
import { repoRoot, startNats } from '@causeway/testing';
import { controllerIdentity } from '../test/support/controller-identity.ts';
import { report } from './report.ts';

const TD = 'bench.test';
const round = (value: number): number => Math.round(value * 10) / 10;

export async function catalogScaleBench(options: {
  json?: boolean;
  clusters: number;
  services: number;
  rate: number;
  seconds: number;
}): Promise<void> {
  const nats = await startNats();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-bench-scale-'));
  const connection = await connect({ servers: nats.url });
  try {
    const bus = await CatalogBus.open(connection);
    const root = await createRootCa({ trustDomain: TD });
    await writeFile(path.join(dir, 'roots.pem'), root.certificatePem);
    process.stderr.write(`signing and publishing ${options.clusters} x ${options.services} records...\n`);
    const signers = [];
    for (let c = 0; c < options.clusters; c++) {
      const identity = await controllerIdentity(root, TD, `c${c}`);
      signers.push(identity);
      await bus.putSigner(`c${c}`, identity.chainPem);
    }
    // Namespace sameness: service s is the same service in every cluster that exports it.
    const recordOf = (c: number, s: number, revision: number): ExportRecord => ({
      cluster: `c${c}`,
      namespace: `ns-${s % 20}`,
      name: `svc-${s}`,
      type: 'ClusterSetIP',
      sessionAffinity: 'None',
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
      exportCreatedAt: new Date(Date.UTC(2026, 0, 1) + c * 1000).toISOString(),
      revision,
      gatewayAddresses: [`10.${c >> 8}.${c & 255}.1:15443`],
      readyEndpoints: 3,
      identities: [`spiffe://${TD}/ns/ns-${s % 20}/sa/svc-${s}`],
      locality: { region: `region-${c % 4}`, zone: `zone-${c % 12}` },
    });
    const total = options.clusters * options.services;
    const publishStart = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    // Initial records carry an old revision; each update takes the wall clock (newer than
    // any earlier revision of its key), so the consumer measures lag on one clock.
    const initialRevision = Date.now() - 3_600_000;
    const lastRevision = new Map<number, number>();
    for (let c = 0; c < options.clusters; c++) {
      for (let s = 0; s < options.services; s++) {
        const put = bus.putRecord(signExportRecord(recordOf(c, s, initialRevision), signers[c]!));
        inFlight.add(put);
        void put.finally(() => inFlight.delete(put));
        if (inFlight.size >= 1_000) await Promise.race(inFlight);
      }
      if ((c + 1) % 10 === 0) process.stderr.write(`  ${(c + 1) * options.services}/${total} published\n`);
    }
    await Promise.all(inFlight);
    const publishSeconds = (performance.now() - publishStart) / 1000;

    process.stderr.write('cold sync into one controller...\n');
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        'tsx',
        path.join(repoRoot, 'bench/catalog-scale-consumer.ts'),
        nats.url,
        TD,
        path.join(dir, 'roots.pem'),
        String(total),
        path.join(dir, 'catalog.json'),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: child.stdout! });
    const next = (phase: string): Promise<Record<string, number>> =>
      new Promise((resolve, reject) => {
        const onLine = (line: string) => {
          const message = JSON.parse(line) as Record<string, number> & { phase: string };
          if (message.phase === phase) {
            lines.off('line', onLine);
            resolve(message);
          } else process.stderr.write(`  ${message.records}/${total} applied\n`);
        };
        lines.on('line', onLine);
        child.once('exit', (code) => reject(new Error(`the consumer exited with ${code}`)));
      });
    const synced = await next('synced');

    process.stderr.write(`${options.rate} record updates/s for ${options.seconds} s...\n`);
    const updateStart = performance.now();
    let sent = 0;
    const updates = options.rate * options.seconds;
    while (sent < updates) {
      const due = Math.floor(((performance.now() - updateStart) / 1000) * options.rate);
      while (sent < Math.min(due, updates)) {
        const c = Math.floor(Math.random() * options.clusters);
        const s = Math.floor(Math.random() * options.services);
        const key = c * options.services + s;
        const revision = Math.max((lastRevision.get(key) ?? initialRevision) + 1, Date.now());
        lastRevision.set(key, revision);
        const put = bus.putRecord(signExportRecord(recordOf(c, s, revision), signers[c]!));
        inFlight.add(put);
        void put.finally(() => inFlight.delete(put));
        sent++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(inFlight);
    const achievedRate = sent / ((performance.now() - updateStart) / 1000);
    child.stdin!.write('report\n');
    const updated = await next('updates');

    const result = {
      bench: 'catalog-scale',
      clusters: options.clusters,
      services_per_cluster: options.services,
      records: total,
      cold_sync_s: round(synced.cold_sync_s!),
      rss_mb: round(Math.max(synced.rss_mb!, updated.rss_mb!)),
      heap_mb: round(synced.heap_mb!),
      bytes_per_record: Math.round(synced.bytes_per_record!),
      update_rate_per_s: Math.round(achievedRate),
      update_p50_ms: updated.update_p50_ms,
      update_p99_ms: updated.update_p99_ms,
      updates_applied: updated.applied,
      publish_s: round(publishSeconds),
      watcher_restarts: updated.watcher_restarts,
    };
    report(
      result,
      [
        ['clusters x services', `${options.clusters} x ${options.services} (${total} signed records)`],
        ['publish into NATS (setup)', `${result.publish_s} s`],
        ['cold sync (verify + apply + merge)', `${result.cold_sync_s} s`],
        ['controller RSS', `${result.rss_mb} MB`],
        ['live heap after the sync', `${result.heap_mb} MB (${result.bytes_per_record} bytes per record)`],
        ['updates sent', `${updates} at ${result.update_rate_per_s}/s`],
        ['updates applied', String(result.updates_applied)],
        ['update latency p50', `${result.update_p50_ms} ms`],
        ['update latency p99', `${result.update_p99_ms} ms`],
        ['watcher restarts (stall recovery)', String(result.watcher_restarts)],
      ],
      options.json ?? false,
    );
  } finally {
    await connection.close();
    await nats.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
