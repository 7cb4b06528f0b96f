import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  CATALOG_BUCKET,
  exportKey,
  heartbeatKey,
  signerKey,
  type CatalogFeed,
  type SignedExportRecord,
  type SignedHeartbeat,
} from '@causeway/catalog';
import { openBucket } from './buckets.ts';

/** A watcher that delivered nothing this long while the bucket moved on is replaced. */
const STALL_MS = 10_000;

/** The catalog bucket: the only code that touches NATS for catalog records. */
export class CatalogBus implements CatalogFeed {
  /** How often a stopped or stalled watcher was replaced. */
  watcherRestarts = 0;

  private constructor(private readonly kv: KV) {}

  /** Whether the bucket refuses rollups, purges and message deletes (see `openBucket`). */
  hardened = false;
  /**
   * Keys whose last operation the watcher saw was a put, with that put's sequence (see
   * {@link lostEntries}).
   */
  private readonly live = new Map<string, number>();
  /** At most the lowest sequence in {@link live} (exact after each loss check). */
  private oldestLive = 0;

  /** Opens (and creates, hardened, when missing) the catalog bucket. */
  static async open(connection: NatsConnection): Promise<CatalogBus> {
    const opened = await openBucket(connection, CATALOG_BUCKET, 5);
    const bus = new CatalogBus(opened.kv);
    bus.hardened = opened.hardened;
    return bus;
  }

  async putSigner(cluster: string, chainPem: string): Promise<number> {
    return await this.kv.put(signerKey(cluster), chainPem);
  }

  async putHeartbeat(signed: SignedHeartbeat): Promise<number> {
    return await this.kv.put(heartbeatKey(signed.heartbeat.cluster), JSON.stringify(signed));
  }

  async putRecord(signed: SignedExportRecord): Promise<number> {
    const { cluster, namespace, name } = signed.record;
    return await this.kv.put(exportKey(cluster, namespace, name), JSON.stringify(signed));
  }

  /**
   * The current value of each of a cluster's own keys (its signer and its export records);
   * a deleted or purged key is absent. For the controller's repair of what it published.
   */
  async ownEntries(cluster: string): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const read = async (key: string): Promise<void> => {
      const entry = await this.kv.get(key);
      if (entry?.operation === 'PUT') found.set(key, entry.string());
    };
    await read(signerKey(cluster));
    // (One filter per listing: servers before 2.10 take no more.)
    for await (const key of await this.kv.keys(`export.${cluster}.>`)) await read(key);
    return found;
  }

  /**
   * Whether entries the watcher saw put went without a delete or purge marker: a
   * `Nats-Rollup: all` or a stream purge (the stream's first sequence moved past a live
   * key's put), or message deletes where they leave fewer messages than live keys (with a
   * history, revisions of other keys usually hide them: the periodic read finds those).
   * One stream-info request; controllers ask every few seconds and repair at once when it
   * is true. Lost keys are forgotten, so one loss is reported once.
   */
  async lostEntries(): Promise<boolean> {
    const { messages, first_seq: first, last_seq: last } = (await this.kv.status()).streamInfo.state;
    let lost = false;
    if (first > this.oldestLive) {
      // (Newer puts of a key that the watcher has not delivered yet may have pushed the one
      // it saw out of the history: a needless repair at worst, and the watcher brings it back.)
      let oldest = Number.MAX_SAFE_INTEGER;
      for (const [key, sequence] of this.live) {
        if (sequence < first) {
          this.live.delete(key);
          lost = true;
        } else oldest = Math.min(oldest, sequence);
      }
      this.oldestLive = oldest;
    }
    if (messages < this.live.size) {
      const now = new Set<string>();
      for await (const key of await this.kv.keys()) now.add(key);
      // (A key put after the stream state was read may be missing from the listing: kept.)
      for (const [key, sequence] of this.live) if (!now.has(key) && sequence <= last) this.live.delete(key);
      lost = true;
    }
    return lost;
  }

  /** Writes raw text under a key (tests use it to play an attacker). */
  async putRaw(key: string, text: string): Promise<number> {
    return await this.kv.put(key, text);
  }

  /**
   * Current values, then every change, of every key. One watcher (one sequence order for
   * the whole bucket) with a watchdog: if the watcher ends, or the bucket holds records
   * newer than the last one delivered while nothing arrived for STALL_MS, a new watcher
   * resumes right after the last delivered sequence.
   */
  async watch(
    onEntry: (key: string, text: string) => void,
    /** A key deleted or purged (its last value stands in the catalog: fail static). */
    onRemoved?: (key: string) => void,
  ): Promise<() => void> {
    let stopped = false;
    let lastSequence = 0;
    let lastEntryAt = Date.now();
    let current: Awaited<ReturnType<KV['watch']>> | undefined;
    const start = async (): Promise<void> => {
      const watcher = await this.kv.watch({
        key: '>',
        ...(lastSequence > 0 ? { resumeFromRevision: lastSequence + 1 } : {}),
      });
      if (stopped) {
        watcher.stop();
        return;
      }
      current = watcher;
      void (async () => {
        try {
          for await (const entry of watcher) {
            lastSequence = Math.max(lastSequence, entry.revision);
            lastEntryAt = Date.now();
            if (entry.operation === 'PUT') {
              this.live.set(entry.key, entry.revision);
              this.oldestLive = Math.min(this.oldestLive, entry.revision);
              onEntry(entry.key, entry.string());
            } else {
              this.live.delete(entry.key);
              onRemoved?.(entry.key);
            }
          }
        } catch {
          // Handled below: a watcher that stops is replaced.
        }
        if (!stopped && current === watcher) restart();
      })();
    };
    let restarting = false;
    const restart = (): void => {
      if (restarting || stopped) return;
      restarting = true;
      this.watcherRestarts++;
      current?.stop();
      current = undefined;
      setTimeout(() => {
        if (stopped) return;
        start()
          .catch(() => {})
          .finally(() => {
            restarting = false;
          });
      }, 500).unref();
    };
    await start();
    const watchdog = setInterval(() => {
      if (Date.now() - lastEntryAt < STALL_MS) return;
      this.kv
        .status()
        .then((status) => {
          if (status.streamInfo.state.last_seq > lastSequence && Date.now() - lastEntryAt >= STALL_MS)
            restart();
          else if (!current) restart();
        })
        .catch(() => {});
    }, STALL_MS / 2);
    watchdog.unref();
    return () => {
      stopped = true;
      clearInterval(watchdog);
      current?.stop();
    };
  }
}
