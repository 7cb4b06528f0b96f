import { X509Certificate } from 'node:crypto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { splitPemCertificates } from '@causeway/pki';
import { mergeCatalog, mergeService } from './merge.ts';
import {
  verifyExportRecord,
  verifyHeartbeat,
  verifySigner,
  type ExportRecord,
  type SignedExportRecord,
  type VerifiedSigner,
} from './records.ts';
import { RecordInterner } from './intern.ts';
import { CatalogJournal, type PeerRecord } from './journal.ts';
import { CatalogState, type ApplyOutcome } from './state.ts';
import type { MergedService } from './types.ts';

/** Least time between two `onCatalog` calls during a burst of records. */
const NOTIFY_MS = 100;
/** The longest a notification waits behind the previous one (see `changed`). */
const MAX_NOTIFY_MS = 1_000;
/** Signing chains kept per cluster (its controller's certificate is renewed and re-keyed on restart). */
const SIGNERS_PER_CLUSTER = 8;
/**
 * Records (and heartbeats) of one cluster held until that cluster's signer arrives, at most;
 * more are refused (`waiting_full`). One key holds one entry, so a cluster that exports this
 * many services fits; a writer making up names cannot grow the list past it.
 */
export const MAX_WAITING_PER_CLUSTER = 10_000;
/**
 * And over all clusters: entries, and their text in characters. Where any writer may make
 * up cluster names too (a bucket without per-cluster permissions), the list stops there.
 */
export const MAX_WAITING = 100_000;
export const MAX_WAITING_CHARS = 64 * 2 ** 20;
/** The JetStream KV bucket of the federated catalog. */
export const CATALOG_BUCKET = 'causeway-catalog';
/** `export.<cluster>.<namespace>.<service>`: namespaces and names are DNS labels, no dots. */
export const exportKey = (cluster: string, namespace: string, name: string): string =>
  `export.${cluster}.${namespace}.${name}`;
/** `heartbeat.<cluster>`: the cluster controller's signed sign of life. */
export const heartbeatKey = (cluster: string): string => `heartbeat.${cluster}`;
/** `signer.<cluster>`: the PEM chain of the cluster controller's signing certificate. */
export const signerKey = (cluster: string): string => `signer.${cluster}`;

/**
 * Where the catalog's entries come from: the current value of every key, then every change,
 * in one order (the NATS adapter is `CatalogBus` in `@causeway/nats`).
 */
export interface CatalogFeed {
  watch(
    onEntry: (key: string, text: string) => void,
    /** A key deleted or purged (its last value stands in the catalog: fail static). */
    onRemoved?: (key: string) => void,
  ): Promise<() => void>;
}

/**
 * Follows the catalog bucket: verifies signers against the trust bundle, verifies every
 * record against its cluster's signer, applies records in revision order, and hands the
 * merged catalog to `onCatalog` after each change. Refusals are counted and never change
 * the catalog. A record that arrives before its cluster's signer waits for it.
 */
export class CatalogSync {
  readonly state = new CatalogState();
  private readonly interner = new RecordInterner();
  private readonly signers = new Map<string, VerifiedSigner>();
  /** Entries whose cluster's signer is not known yet, by key, and how many per cluster. */
  private readonly waiting = new Map<string, string>();
  private readonly waitingPerCluster = new Map<string, number>();
  private readonly refused: Counter;
  private readonly lag: Histogram;
  private readonly peers = new Map<string, PeerRecord>();
  /** The accepted signers (PEM) and signed records (sharing the state's record objects), as persisted. */
  private readonly accepted = {
    signers: new Map<string, { cluster: string; pem: string }>(),
    records: new Map<string, SignedExportRecord>(),
  };
  /** Services whose merge is due (merged lazily: once per notification, not per record). */
  private readonly dirty = new Set<string>();
  private readonly journal: CatalogJournal | undefined;
  private readonly startedAt = Date.now();
  private merged = new Map<string, MergedService>();
  /** Per cluster, the lag of its last applied record (ms, publisher clock to ours). */
  private readonly lastLagMs = new Map<string, number>();
  private restoring = false;
  private stop: (() => void) | undefined;

  constructor(
    private readonly options: {
      trustDomain: string;
      roots: () => readonly X509Certificate[];
      onCatalog: (catalog: Map<string, MergedService>) => void;
      registry?: Registry;
      /** Where the last-known-good catalog is kept (restored by `restore()`). */
      statePath?: string;
      /** A cluster whose last heartbeat is older than this is stale (default 30 s). */
      staleAfterMs?: number;
      /** A key was deleted or purged on NATS (the catalog keeps its last value). */
      onRemoved?: (key: string) => void;
      /** Bounds of the list of entries waiting for their signer (tests make them small). */
      waitingLimits?: { perCluster?: number; total?: number; chars?: number };
    },
  ) {
    this.journal = options.statePath ? new CatalogJournal(options.statePath) : undefined;
    this.lag = new Histogram({
      name: 'causeway_catalog_sync_lag_seconds',
      help: "Seconds from a record's revision (its publisher's clock, in ms) to its application here.",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: options.registry ? [options.registry] : [],
    });
    this.refused = new Counter({
      name: 'causeway_catalog_records_refused_total',
      help: 'Catalog records and signers from NATS that were refused, by reason.',
      labelNames: ['reason'],
      registers: options.registry ? [options.registry] : [],
    });
    const peers = this.peers;
    const state = this.state;
    new Gauge({
      name: 'causeway_catalog_peer_heartbeat_age_seconds',
      help: 'Seconds since the last verified heartbeat of each cluster (silence never deletes endpoints).',
      labelNames: ['cluster'],
      registers: options.registry ? [options.registry] : [],
      collect() {
        this.reset();
        for (const [cluster, peer] of peers) this.set({ cluster }, (Date.now() - peer.receivedAt) / 1000);
      },
    });
    const peerStatus = () => this.peerStatus();
    new Gauge({
      name: 'causeway_catalog_peer_stale',
      help: 'Whether a cluster is stale (1): no verified heartbeat within the stale-after window.',
      labelNames: ['cluster'],
      registers: options.registry ? [options.registry] : [],
      collect() {
        this.reset();
        for (const peer of peerStatus()) this.set({ cluster: peer.cluster }, peer.stale ? 1 : 0);
      },
    });
    const waitingPerCluster = this.waitingPerCluster;
    new Gauge({
      name: 'causeway_catalog_records_waiting',
      help: "Records and heartbeats held until their cluster's signer is known, by cluster.",
      labelNames: ['cluster'],
      registers: options.registry ? [options.registry] : [],
      collect() {
        this.reset();
        for (const [cluster, count] of waitingPerCluster) this.set({ cluster }, count);
      },
    });
    new Gauge({
      name: 'causeway_catalog_exports',
      help: 'Exported services in the federated catalog, by source cluster.',
      labelNames: ['cluster'],
      registers: options.registry ? [options.registry] : [],
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const record of state.live()) counts.set(record.cluster, (counts.get(record.cluster) ?? 0) + 1);
        for (const [cluster, count] of counts) this.set({ cluster }, count);
      },
    });
  }

  /**
   * Every cluster known from heartbeats or records: heartbeat age in seconds (a cluster
   * never heard from counts from when this sync started), staleness and gateways.
   */
  peerStatus(now = Date.now()): PeerStatus[] {
    const staleAfter = this.options.staleAfterMs ?? 30_000;
    const clusters = new Set([...this.peers.keys(), ...this.state.live().map((record) => record.cluster)]);
    return [...clusters]
      .map((cluster) => {
        const peer = this.peers.get(cluster);
        const age = now - (peer?.receivedAt ?? this.startedAt);
        return {
          cluster,
          ageSeconds: age / 1000,
          stale: age > staleAfter,
          heartbeatSeen: peer !== undefined,
          ...(peer ? { lastHeartbeat: new Date(peer.receivedAt).toISOString() } : {}),
          ...(this.lastLagMs.has(cluster) ? { syncLagSeconds: this.lastLagMs.get(cluster)! / 1000 } : {}),
          gatewayAddresses: peer?.gatewayAddresses ?? [],
        };
      })
      .sort((a, b) => a.cluster.localeCompare(b.cluster));
  }

  /**
   * The catalog as last handed to `onCatalog`: only what is on disk (with a state path).
   * Proxies and the API server are fed from this view, never from newer, unwritten state.
   */
  durableCatalog(): ReadonlyMap<string, MergedService> {
    return this.durable.catalog;
  }

  /** The live records behind `durableCatalog()`. */
  durableRecords(): readonly ExportRecord[] {
    return this.durable.records;
  }

  private durable: { catalog: Map<string, MergedService>; records: ExportRecord[] } = {
    catalog: new Map(),
    records: [],
  };

  /** The merged catalog now (including changes not yet on disk). */
  catalog(): ReadonlyMap<string, MergedService> {
    this.mergeDirty();
    return this.merged;
  }

  private mergeDirty(): void {
    for (const key of this.dirty) {
      const records = this.state.forService(key);
      if (records.length === 0) this.merged.delete(key);
      else this.merged.set(key, mergeService(records));
    }
    this.dirty.clear();
  }

  /**
   * Loads the persisted catalog, verifying every signer and record again against the
   * current roots, then hands the merged catalog over once. Unreadable state is
   * reported and ignored (NATS brings everything back).
   */
  async restore(): Promise<{ records: number } | undefined> {
    const saved = await this.journal?.load();
    if (!saved || (!saved.snapshot && saved.entries.length === 0)) return undefined;
    this.restoring = true;
    try {
      const { snapshot } = saved;
      for (const signer of Object.values(snapshot?.signers ?? {}))
        this.acceptSigner(signer.cluster, signer.pem);
      for (const [key, signed] of Object.entries(snapshot?.records ?? {})) this.applySigned(key, signed);
      for (const [cluster, peer] of Object.entries(snapshot?.peers ?? {})) this.restorePeer(cluster, peer);
      for (const entry of saved.entries) {
        if (entry.t === 'signer') this.acceptSigner(entry.cluster, entry.pem);
        else if (entry.t === 'record') this.applySigned(entry.key, entry.signed);
        else this.restorePeer(entry.cluster, entry.peer);
      }
    } finally {
      this.restoring = false;
    }
    // What was restored is on disk already.
    this.durable = { catalog: new Map(this.catalog()), records: this.state.live() };
    this.changed();
    return { records: this.accepted.records.size };
  }

  private restorePeer(cluster: string, peer: PeerRecord): void {
    if (Number.isSafeInteger(peer?.sequence) && Number.isFinite(peer?.receivedAt))
      this.peers.set(cluster, peer);
  }

  /** Resolves once every accepted change is on disk. */
  async flush(): Promise<void> {
    await this.journal?.flush();
  }

  /**
   * After a change: marks the service for merging (or merges everything, after a restore)
   * and tells `onCatalog` once the change is on disk — at once when it was quiet, otherwise at
   * most every NOTIFY_MS, so a burst (a cold sync of many records) costs a few
   * notifications, not one per record. A notification that took long to prepare (merging
   * many services) spaces the next ones further apart (four times its cost, at most a
   * second), so that a
   * cold sync of a large catalog spends most of its time applying records, not merging
   * the same services again and again.
   */
  private changed(serviceKey?: string): void {
    if (serviceKey === undefined) {
      this.dirty.clear();
      this.merged = mergeCatalog(this.state.live());
    } else {
      this.dirty.add(serviceKey);
    }
    if (this.notifyPending) return;
    this.notifyPending = true;
    // Proxies hear of a change only once it is on disk: a controller restarted without
    // NATS never serves them anything older than what they had.
    const notify = (): void => {
      this.notifyTimer = undefined;
      // The view is taken before the commit that covers it: everything in it is on disk
      // once the commit resolves. Changes applied meanwhile wait for the next round.
      const merging = performance.now();
      this.mergeDirty();
      this.notifyCostMs = performance.now() - merging;
      const view = { catalog: new Map(this.catalog()), records: this.state.live() };
      void (this.journal?.commit() ?? Promise.resolve())
        .then(() => {
          this.notifyPending = false;
          this.notifiedAt = Date.now();
          this.durable = view;
          this.options.onCatalog(view.catalog);
          this.maybeCompact();
        })
        .catch(() => {
          // onCatalog's own failures are its business; the next change notifies again.
          this.notifyPending = false;
        });
    };
    const wait =
      this.notifiedAt + Math.min(MAX_NOTIFY_MS, Math.max(NOTIFY_MS, 4 * this.notifyCostMs)) - Date.now();
    if (wait <= 0) notify();
    else this.notifyTimer = setTimeout(notify, wait);
  }

  private notifiedAt = 0;
  /** How long the last notification's view took to prepare (ms). */
  private notifyCostMs = 0;
  private notifyPending = false;
  private notifyTimer: NodeJS.Timeout | undefined;
  private peersJournaledAt = 0;

  /** A journal longer than the catalog (and than 10,000 lines) becomes a new snapshot. */
  private maybeCompact(): void {
    const journal = this.journal;
    if (!journal || this.compacting || journal.length < Math.max(10_000, 2 * this.accepted.records.size))
      return;
    this.compacting = true;
    void journal
      .compact(() => ({
        version: 1,
        signers: Object.fromEntries(this.accepted.signers),
        records: Object.fromEntries(this.accepted.records),
        peers: Object.fromEntries(this.peers),
      }))
      .finally(() => {
        this.compacting = false;
      });
  }

  private compacting = false;

  async attach(feed: CatalogFeed): Promise<void> {
    this.stop = await feed.watch(
      (key, text) => this.onEntry(key, text),
      (key) => {
        // A deleted key no longer waits for its signer.
        this.unwait(key);
        this.options.onRemoved?.(key);
      },
    );
  }

  detach(): void {
    this.stop?.();
    if (this.notifyTimer) clearTimeout(this.notifyTimer);
    this.notifyTimer = undefined;
    this.notifyPending = false;
  }

  /** Refusal counts by reason (for tests and `causeway status`). */
  async refusals(): Promise<Record<string, number>> {
    const metric = await this.refused.get();
    return Object.fromEntries(metric.values.map((value) => [String(value.labels.reason), value.value]));
  }

  onEntry(key: string, text: string): ApplyOutcome | undefined {
    if (key.startsWith('signer.')) {
      this.acceptSigner(key.slice('signer.'.length), text);
      return undefined;
    }
    if (key.startsWith('heartbeat.')) {
      this.acceptHeartbeat(key, text);
      return undefined;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.refused.inc({ reason: 'malformed' });
      return undefined;
    }
    return this.applySigned(key, parsed, text);
  }

  /** Verifies and applies one signed record (from NATS, or from the state file). */
  private applySigned(key: string, parsed: unknown, text?: string): ApplyOutcome | undefined {
    const verdict = verifyExportRecord(parsed, this.signers);
    if (!verdict.ok) {
      if (verdict.reason === 'unknown_signer') this.wait(key, text ?? JSON.stringify(parsed));
      else this.refused.inc({ reason: verdict.reason });
      return undefined;
    }
    const keyCluster = key.split('.')[1];
    if (keyCluster !== verdict.record.cluster) {
      this.refused.inc({ reason: 'wrong_cluster' });
      return undefined;
    }
    // Kept with exactly its signed fields, sharing what it repeats of other records.
    const record = this.interner.record(verdict.record);
    const outcome = this.state.apply(record);
    if (!outcome.applied) {
      if (!this.restoring) this.refused.inc({ reason: outcome.reason });
      return outcome;
    }
    const { signer, signature } = parsed as SignedExportRecord;
    const signed = { record, signer: this.interner.string(signer), signature };
    this.accepted.records.set(key, signed);
    if (!this.restoring) {
      // The text from NATS is the signed record as JSON already (one line: JSON.parse
      // accepted it, and NATS values here are written by JSON.stringify).
      if (text !== undefined && !text.includes('\n')) this.journal?.appendRecordText(key, text);
      else this.journal?.append({ t: 'record', key, signed });
    }
    if (!this.restoring) {
      const lag = Math.max(0, Date.now() - record.revision);
      this.lag.observe(lag / 1000);
      this.lastLagMs.set(record.cluster, lag);
      this.changed(`${record.namespace}/${record.name}`);
    }
    return outcome;
  }

  private acceptHeartbeat(key: string, text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.refused.inc({ reason: 'malformed' });
      return;
    }
    const verdict = verifyHeartbeat(parsed, this.signers);
    if (!verdict.ok) {
      if (verdict.reason === 'unknown_signer') this.wait(key, text);
      else this.refused.inc({ reason: verdict.reason });
      return;
    }
    const { heartbeat } = verdict;
    if (key !== `heartbeat.${heartbeat.cluster}`) {
      this.refused.inc({ reason: 'wrong_cluster' });
      return;
    }
    const previous = this.peers.get(heartbeat.cluster);
    if (previous && heartbeat.sequence <= previous.sequence) {
      this.refused.inc({ reason: 'stale_revision' });
      return;
    }
    // Age is measured on our own clock, from when the heartbeat arrived. Heartbeats are
    // journaled at most every 10 s (a restart keeps each peer's age roughly right).
    this.peers.set(heartbeat.cluster, {
      sequence: heartbeat.sequence,
      receivedAt: Date.now(),
      gatewayAddresses: heartbeat.gatewayAddresses,
    });
    // Heartbeats alone are written rarely: a restart needs each peer's age only roughly.
    if (!this.restoring && this.journal && Date.now() - this.peersJournaledAt > 10_000) {
      this.peersJournaledAt = Date.now();
      for (const [cluster, peer] of this.peers) this.journal.append({ t: 'peer', cluster, peer });
      void this.journal.commit();
    }
  }

  /**
   * Accepts a controller's signing chain. Earlier signers of the same cluster are kept
   * (up to SIGNERS_PER_CLUSTER) so that records they signed stay verifiable. On restore, a
   * chain that has expired since it was accepted still verifies (chain and signatures are
   * checked as of just before its expiry): what was verified on receipt stays served.
   */
  private acceptSigner(cluster: string, chainPem: string): void {
    try {
      const chain = splitPemCertificates(chainPem).map((pem) => new X509Certificate(pem));
      const expiry = Math.min(...chain.map((certificate) => Date.parse(certificate.validTo)));
      const now = this.restoring && expiry <= Date.now() ? new Date(expiry - 1_000) : undefined;
      const signer = verifySigner(chain, this.options.roots(), this.options.trustDomain, now);
      if (signer.cluster !== cluster)
        throw new Error(`a signer for ${signer.cluster} under signer.${cluster}`);
      if (!this.signers.has(signer.fingerprint)) {
        const ofCluster = [...this.signers.values()].filter((known) => known.cluster === cluster);
        for (const old of ofCluster.slice(0, Math.max(0, ofCluster.length - SIGNERS_PER_CLUSTER + 1))) {
          this.signers.delete(old.fingerprint);
          this.accepted.signers.delete(old.fingerprint);
        }
        if (!this.restoring) this.journal?.append({ t: 'signer', cluster, pem: chainPem });
      }
      this.signers.set(signer.fingerprint, signer);
      this.accepted.signers.set(signer.fingerprint, { cluster, pem: chainPem });
    } catch {
      this.refused.inc({ reason: 'bad_signer' });
      return;
    }
    const pending = [...this.waiting];
    this.waiting.clear();
    this.waitingPerCluster.clear();
    this.waitingChars = 0;
    for (const [key, text] of pending) this.onEntry(key, text);
  }

  /** Per cluster, the records and heartbeats held until its signer is known (none: absent). */
  waitingForSigner(): Record<string, number> {
    return Object.fromEntries(this.waitingPerCluster);
  }

  /** Holds an entry until its cluster's signer is known, within the bounds of the list. */
  private wait(key: string, text: string): void {
    const limits = this.options.waitingLimits ?? {};
    const cluster = clusterOfKey(key);
    const previous = this.waiting.get(key);
    const chars = this.waitingChars - (previous?.length ?? 0) + text.length;
    const count = this.waitingPerCluster.get(cluster) ?? 0;
    if (
      chars > (limits.chars ?? MAX_WAITING_CHARS) ||
      (previous === undefined &&
        (count >= (limits.perCluster ?? MAX_WAITING_PER_CLUSTER) ||
          this.waiting.size >= (limits.total ?? MAX_WAITING)))
    ) {
      this.refused.inc({ reason: 'waiting_full' });
      return;
    }
    if (previous === undefined) this.waitingPerCluster.set(cluster, count + 1);
    this.waitingChars = chars;
    this.waiting.set(key, text);
  }

  /** Drops a key's entry from the waiting list. */
  private unwait(key: string): void {
    const text = this.waiting.get(key);
    if (text === undefined) return;
    this.waiting.delete(key);
    this.waitingChars -= text.length;
    const cluster = clusterOfKey(key);
    const count = (this.waitingPerCluster.get(cluster) ?? 1) - 1;
    if (count > 0) this.waitingPerCluster.set(cluster, count);
    else this.waitingPerCluster.delete(cluster);
  }

  private waitingChars = 0;
}

/** `export.<cluster>.<namespace>.<name>` or `heartbeat.<cluster>`: the cluster. */
const clusterOfKey = (key: string): string => key.split('.')[1] ?? '';

/** A peer cluster as its heartbeats show it. */
export interface PeerStatus {
  readonly cluster: string;
  readonly ageSeconds: number;
  readonly stale: boolean;
  readonly heartbeatSeen: boolean;
  /** When the last verified heartbeat arrived (our clock). */
  readonly lastHeartbeat?: string;
  /** Lag of the last record applied from this cluster (its revision clock to ours). */
  readonly syncLagSeconds?: number;
  readonly gatewayAddresses: readonly string[];
}
