// The controller side of `bench catalog-scale`, in its own process so that its memory is
// measured alone: a CatalogSync (verification, revision order, merge, persistence) follows
// the catalog bucket. Lines on stdout report progress as JSON; a line on stdin asks for
// the update figures.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { CatalogSync, type ApplyOutcome } from '@causeway/catalog';
import { CatalogBus } from '@causeway/nats';

const [natsUrl, trustDomain, rootsFile, expectedText, statePath] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const expected = Number(expectedText);
const roots = (await readFile(rootsFile, 'utf8'))
  .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!
  .map((pem) => new X509Certificate(pem));
const say = (value: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`);
};

let notifications = 0;
let services = 0;
const sync = new CatalogSync({
  trustDomain,
  roots: () => roots,
  statePath,
  onCatalog: (catalog) => {
    notifications++;
    services = catalog.size;
  },
});
let synced = false;
const lags: number[] = [];
// Every applied record after the cold sync: its lag from the publisher's revision (the
// publisher is on this machine, so one clock).
const apply = sync.onEntry.bind(sync);
sync.onEntry = (key: string, text: string): ApplyOutcome | undefined => {
  const outcome = apply(key, text);
  if (synced && outcome?.applied) {
    const revision = (JSON.parse(text) as { record: { revision: number } }).record.revision;
    lags.push(Date.now() - revision);
  }
  return outcome;
};

/** The live heap after a full collection (the process runs with --expose-gc). */
const liveHeap = (): number => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
};
const heapBefore = liveHeap();
const connection = await connect({ servers: natsUrl });
void (async () => {
  for await (const status of connection.status())
    if (status.type !== 'ping') process.stderr.write(`  consumer NATS connection: ${status.type}\n`);
})();
const start = performance.now();
const bus = await CatalogBus.open(connection);
await sync.attach(bus);
const progress = setInterval(() => say({ phase: 'syncing', records: sync.state.live().length }), 2_000);
while (sync.state.live().length < expected) await new Promise((r) => setTimeout(r, 20));
clearInterval(progress);
const coldSyncSeconds = (performance.now() - start) / 1000;
synced = true;
await sync.flush();
const rssAtSync = process.memoryUsage().rss;
const heapAfter = liveHeap();
say({
  phase: 'synced',
  cold_sync_s: coldSyncSeconds,
  rss_mb: rssAtSync / 2 ** 20,
  heap_mb: heapAfter / 2 ** 20,
  // What one record costs in the live heap: the catalog's growth over the empty process.
  bytes_per_record: (heapAfter - heapBefore) / expected,
  services,
  notifications,
  watcher_restarts: bus.watcherRestarts,
});

createInterface({ input: process.stdin }).once('line', () => {
  void (async () => {
    // Let the last updates arrive.
    await new Promise((r) => setTimeout(r, 1_000));
    const sorted = [...lags].sort((a, b) => a - b);
    const at = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
    say({
      phase: 'updates',
      applied: lags.length,
      update_p50_ms: at(50),
      update_p99_ms: at(99),
      rss_mb: process.memoryUsage().rss / 2 ** 20,
      refused: await sync.refusals(),
      watcher_restarts: bus.watcherRestarts,
    });
    sync.detach();
    await connection.close();
    process.exit(0);
  })();
});
