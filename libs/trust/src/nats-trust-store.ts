import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { openBucket } from '@causeway/nats';
import type { SignedTrustBundle } from '@causeway/pki';
import { BUNDLE_KEY, intermediateKey, statusKey, TRUST_BUCKET, type ClusterTrustStatus } from './keys.ts';

/** A raw KV entry as seen by a watcher. */
export interface TrustEntry {
  readonly key: string;
  readonly revision: number;
  readonly operation: 'PUT' | 'DEL' | 'PURGE';
  readonly text: string;
}

/** The trust bucket in JetStream KV: the only code that touches NATS for trust. */
export class NatsTrustStore {
  private constructor(
    private readonly kv: KV,
    /** Whether the bucket refuses rollups, purges and message deletes (see `openBucket`). */
    readonly hardened: boolean,
  ) {}

  /** Opens (and creates, hardened, when missing) the trust bucket. */
  static async open(connection: NatsConnection): Promise<NatsTrustStore> {
    const opened = await openBucket(connection, TRUST_BUCKET, 10);
    return new NatsTrustStore(opened.kv, opened.hardened);
  }

  async putBundle(signed: SignedTrustBundle): Promise<number> {
    return await this.kv.put(BUNDLE_KEY, JSON.stringify(signed));
  }

  /** Writes raw text under the bundle key (tests use it to play an attacker). */
  async putRawBundle(text: string): Promise<number> {
    return await this.kv.put(BUNDLE_KEY, text);
  }

  async putIntermediate(cluster: string, certificatePem: string): Promise<number> {
    return await this.kv.put(intermediateKey(cluster), certificatePem);
  }

  async putStatus(status: ClusterTrustStatus): Promise<number> {
    return await this.kv.put(statusKey(status.cluster), JSON.stringify(status));
  }

  async status(cluster: string): Promise<ClusterTrustStatus | undefined> {
    const entry = await this.kv.get(statusKey(cluster));
    if (!entry || entry.operation !== 'PUT') return undefined;
    return JSON.parse(entry.string()) as ClusterTrustStatus;
  }

  /**
   * Calls `onEntry` with the current value of each matching key, then with every change,
   * until the returned function is called.
   */
  async watch(keys: string[], onEntry: (entry: TrustEntry) => void): Promise<() => void> {
    // One watcher per key: several filter subjects in one consumer need nats-server 2.10,
    // and Debian bookworm ships 2.9.
    const watchers = await Promise.all(keys.map((key) => this.kv.watch({ key })));
    for (const watcher of watchers) {
      void (async () => {
        for await (const entry of watcher) {
          onEntry({
            key: entry.key,
            revision: entry.revision,
            operation: entry.operation,
            text: entry.string(),
          });
        }
      })();
    }
    return () => {
      for (const watcher of watchers) watcher.stop();
    };
  }
}
