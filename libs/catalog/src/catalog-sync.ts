import { X509Certificate } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { StateFile } from '@causeway/config';
import { splitPemCertificates } from '@causeway/pki';
import { mergeCatalog, mergeService } from './merge.ts';
import {
  verifyExportRecord,
  verifyHeartbeat,
  verifySigner,
  type SignedExportRecord,
  type SignedHeartbeat,
  type VerifiedSigner,
} from './records.ts';
import { CatalogState, type ApplyOutcome } from './state.ts';
import type { MergedService } from './types.ts';

/** Least time between two `onCatalog` calls during a burst of records. */
const NOTIFY_MS = 100;
/** Most time between a change and its write to the state file. */
const PERSIST_MS = 500;

/** The JetStream KV bucket of the federated catalog. */
export const CATALOG_BUCKET = 'causeway-catalog';
/** `export.<cluster>.<namespace>.<service>`: namespaces and names are DNS labels, no dots. */
export const exportKey = (cluster: string, namespace: string, name: string): string =>
  `export.${cluster}.${namespace}.${name}`;
/** `heartbeat.<cluster>`: the cluster controller's signed sign of life. */
export const heartbeatKey = (cluster: string): string => `heartbeat.${cluster}`;
/** `signer.<cluster>`: the PEM chain of the cluster controller's signing certificate. */
export const signerKey = (cluster: string): string => `signer.${cluster}`;

/** The catalog bucket: the only code that touches NATS for catalog records. */
export class CatalogBus {
  private constructor(private readonly kv: KV) {}

  static async open(connection: NatsConnection): Promise<CatalogBus> {
    return new CatalogBus(await new Kvm(connection).create(CATALOG_BUCKET, { history: 5 }));
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

  /** Writes raw text under a key (tests use it to play an attacker). */
  async putRaw(key: string, text: string): Promise<number> {
    return await this.kv.put(key, text);
  }

  /** Current values, then every change, of the signer and export keys. */
  async watch(onEntry: (key: string, text: string) => void): Promise<() => void> {
    // One watcher per key family: several filter subjects need nats-server 2.10.
    const watchers = await Promise.all(
      ['signer.>', 'export.>', 'heartbeat.>'].map((key) => this.kv.watch({ key })),
    );
    for (const watcher of watchers) {
      void (async () => {
        for await (const entry of watcher) {
          if (entry.operation === 'PUT') onEntry(entry.key, entry.string());
        }
      })();
    }
    return () => {
      for (const watcher of watchers) watcher.stop();
    };
  }
}

/**
 * Follows the catalog bucket: verifies signers against the trust bundle, verifies every
 * record against its cluster's signer, applies records in revision order, and hands the
 * merged catalog to `onCatalog` after each change. Refusals are counted and never change
 * the catalog. A record that arrives before its cluster's signer waits for it.
 */
export class CatalogSync {
  readonly state = new CatalogState();
  private readonly signers = new Map<string, VerifiedSigner>();
  private readonly waiting = new Map<string, string>();
  private readonly refused: Counter;
  private readonly lag: Histogram;
  private readonly peers = new Map<string, PeerRecord>();
  /** The accepted text of every signer and record, as persisted. */
  private readonly accepted = { signers: new Map<string, string>(), records: new Map<string, string>() };
  private readonly stateFile: StateFile<PersistedCatalog> | undefined;
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
    },
  ) {
    this.stateFile = options.statePath ? new StateFile(options.statePath) : undefined;
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

  /** The merged catalog now. */
  catalog(): ReadonlyMap<string, MergedService> {
    return this.merged;
  }

  /**
   * Loads the persisted catalog, verifying every signer and record again against the
   * current roots, then hands the merged catalog over once. Unreadable state is
   * reported and ignored (NATS brings everything back).
   */
  async restore(): Promise<{ records: number } | undefined> {
    const saved = await this.stateFile?.read();
    if (!saved) return undefined;
    this.restoring = true;
    try {
      for (const [cluster, pem] of Object.entries(saved.signers)) this.acceptSigner(cluster, pem);
      for (const [key, text] of Object.entries(saved.records)) this.onEntry(key, text);
      for (const [cluster, peer] of Object.entries(saved.peers)) {
        if (Number.isSafeInteger(peer.sequence) && Number.isFinite(peer.receivedAt))
          this.peers.set(cluster, peer);
      }
    } finally {
      this.restoring = false;
    }
    this.changed();
    return { records: this.accepted.records.size };
  }

  /** Writes any pending state now and resolves once it is on disk. */
  async flush(): Promise<void> {
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
      this.persist();
    }
    await this.stateFile?.flush();
  }

  /**
   * After a change: re-merges one service (or everything, after a restore), schedules a
   * write of the state, and tells `onCatalog` — at once when it was quiet, otherwise at
   * most every NOTIFY_MS, so a burst (a cold sync of many records) costs a few
   * notifications, not one per record.
   */
  private changed(serviceKey?: string): void {
    if (serviceKey === undefined) {
      this.merged = mergeCatalog(this.state.live());
    } else {
      const records = this.state.forService(serviceKey);
      if (records.length === 0) this.merged.delete(serviceKey);
      else this.merged.set(serviceKey, mergeService(records));
    }
    this.schedulePersist();
    if (this.notifyTimer) return;
    const wait = this.notifiedAt + NOTIFY_MS - Date.now();
    if (wait <= 0) {
      this.notifiedAt = Date.now();
      this.options.onCatalog(this.merged);
      return;
    }
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = undefined;
      this.notifiedAt = Date.now();
      this.options.onCatalog(this.merged);
    }, wait);
  }

  private notifiedAt = 0;
  private notifyTimer: NodeJS.Timeout | undefined;
  private persistTimer: NodeJS.Timeout | undefined;

  /** The state is written at most every PERSIST_MS (NATS brings back anything newer). */
  private schedulePersist(): void {
    if (!this.stateFile || this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persist();
    }, PERSIST_MS);
    this.persistTimer.unref();
  }

  private persistedAt = 0;

  private persist(): void {
    this.persistedAt = Date.now();
    this.stateFile?.write({
      version: 1,
      signers: Object.fromEntries(this.accepted.signers),
      records: Object.fromEntries(this.accepted.records),
      peers: Object.fromEntries(this.peers),
    });
  }

  async attach(bus: CatalogBus): Promise<void> {
    this.stop = await bus.watch((key, text) => this.onEntry(key, text));
  }

  detach(): void {
    this.stop?.();
    if (this.notifyTimer) clearTimeout(this.notifyTimer);
    this.notifyTimer = undefined;
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
    const verdict = verifyExportRecord(parsed, this.signers);
    if (!verdict.ok) {
      if (verdict.reason === 'unknown_signer') this.waiting.set(key, text);
      else this.refused.inc({ reason: verdict.reason });
      return undefined;
    }
    const keyCluster = key.split('.')[1];
    if (keyCluster !== verdict.record.cluster) {
      this.refused.inc({ reason: 'wrong_cluster' });
      return undefined;
    }
    const outcome = this.state.apply(verdict.record);
    if (!outcome.applied) {
      if (!this.restoring) this.refused.inc({ reason: outcome.reason });
      return outcome;
    }
    this.accepted.records.set(key, text);
    if (!this.restoring) {
      const lag = Math.max(0, Date.now() - verdict.record.revision);
      this.lag.observe(lag / 1000);
      this.lastLagMs.set(verdict.record.cluster, lag);
      this.changed(`${verdict.record.namespace}/${verdict.record.name}`);
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
      if (verdict.reason === 'unknown_signer') this.waiting.set(key, text);
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
    // persisted at most every 10 s (a restart keeps each peer's age roughly right).
    this.peers.set(heartbeat.cluster, {
      sequence: heartbeat.sequence,
      receivedAt: Date.now(),
      gatewayAddresses: heartbeat.gatewayAddresses,
    });
    // Heartbeats alone are written rarely: a restart needs each peer's age only roughly.
    if (!this.restoring && Date.now() - this.persistedAt > 10_000) this.schedulePersist();
  }

  private acceptSigner(cluster: string, chainPem: string): void {
    try {
      const chain = splitPemCertificates(chainPem).map((pem) => new X509Certificate(pem));
      const signer = verifySigner(chain, this.options.roots(), this.options.trustDomain);
      if (signer.cluster !== cluster)
        throw new Error(`a signer for ${signer.cluster} under signer.${cluster}`);
      for (const [fingerprint, known] of this.signers)
        if (known.cluster === cluster) this.signers.delete(fingerprint);
      this.signers.set(signer.fingerprint, signer);
      this.accepted.signers.set(cluster, chainPem);
    } catch {
      this.refused.inc({ reason: 'bad_signer' });
      return;
    }
    const pending = [...this.waiting];
    this.waiting.clear();
    for (const [key, text] of pending) this.onEntry(key, text);
  }
}

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

interface PeerRecord {
  sequence: number;
  /** Our clock, ms. */
  receivedAt: number;
  gatewayAddresses: readonly string[];
}

/** The last-known-good catalog on disk: the accepted texts, verified again on restore. */
interface PersistedCatalog {
  version: 1;
  signers: Record<string, string>;
  records: Record<string, string>;
  peers: Record<string, PeerRecord>;
}
