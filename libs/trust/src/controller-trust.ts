import { createPublicKey, X509Certificate } from 'node:crypto';
import path from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { StateFile } from '@causeway/config';
import {
  bundleHash,
  loadCertificateAuthority,
  verifyTrustBundle,
  type CertificateAuthority,
  type SignedTrustBundle,
  type TrustBundle,
} from '@causeway/pki';
import { decideBundle, decideIntermediate, rootOf, rootsOf } from './decisions.ts';
import { BUNDLE_KEY, intermediateKey, type ClusterTrustStatus } from './keys.ts';
import type { NatsTrustStore, TrustEntry } from './nats-trust-store.ts';

/** What the trust side of a controller needs from its surroundings. */
export interface ControllerTrustOptions {
  readonly cluster: string;
  readonly trustDomain: string;
  /** The cluster intermediate CA (certificate and key from the controller's files). */
  readonly intermediate: CertificateAuthority;
  /** The bundle the controller was installed with (trusted by configuration). */
  readonly bootstrapBundle: SignedTrustBundle;
  /** Where the last-known-good bundle and intermediate are kept across restarts. */
  readonly stateDir: string;
  /** Counts of issued workload certificates by root and bundle (from the signing service). */
  readonly workloads: () => { byRoot: Record<string, number>; byBundle: Record<string, number> };
  readonly registry?: Registry;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

interface PersistedState {
  readonly signedBundle: SignedTrustBundle;
  readonly intermediatePem: string;
}

/**
 * The controller's trust state: the current bundle and intermediate, changed only by
 * verified records from NATS (one at a time, in arrival order), persisted so that a
 * restart without NATS keeps them, and reported back as a status record.
 */
export class ControllerTrust {
  private signedBundle: SignedTrustBundle;
  private intermediate: CertificateAuthority;
  private stopWatch: (() => void) | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly rejected: Counter;
  private readonly version: Gauge;
  private readonly info: Gauge;
  private readonly listeners: Array<() => void | Promise<void>> = [];
  /** Records are applied strictly one after another. */
  private queue: Promise<void> = Promise.resolve();
  /**
   * An intermediate that arrived before the bundle that trusts its root (possible when
   * state was lost); it is looked at again after every accepted bundle.
   */
  private waitingIntermediate: string | undefined;
  private readonly stateFile: StateFile<PersistedState>;

  constructor(private readonly options: ControllerTrustOptions) {
    this.stateFile = new StateFile(path.join(options.stateDir, 'trust-state.json'));
    this.signedBundle = options.bootstrapBundle;
    this.intermediate = options.intermediate;
    const registers = options.registry ? [options.registry] : [];
    this.rejected = new Counter({
      name: 'causeway_trust_updates_rejected_total',
      help: 'Trust records from NATS that were refused (the current ones stay), by kind and reason.',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.version = new Gauge({
      name: 'causeway_trust_bundle_version',
      help: 'Version of the trust bundle in use.',
      registers,
    });
    const expiry = () => this.intermediate.certificate.validTo;
    new Gauge({
      name: 'causeway_certificate_expiry_timestamp_seconds',
      help: 'When the cluster intermediate that signs workload certificates expires (Unix seconds).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.set({ kind: 'intermediate' }, Date.parse(expiry()) / 1000);
      },
    });
    this.info = new Gauge({
      name: 'causeway_trust_bundle_info',
      help: 'Always 1; the labels name the trust bundle in use and the intermediate that signs.',
      labelNames: ['bundle_hash', 'intermediate'],
      registers,
    });
    this.updateMetrics();
  }

  get bundle(): TrustBundle {
    return this.signedBundle.bundle;
  }

  get signingCa(): CertificateAuthority {
    return this.intermediate;
  }

  /** Called after the bundle or the intermediate changed. */
  onChange(listener: () => void | Promise<void>): void {
    this.listeners.push(listener);
  }

  /**
   * Loads the persisted state. It is used only if its bundle verifies (signed by one of its
   * own or the bootstrap roots), is not older than the bootstrap bundle, and its
   * intermediate is for our key and chains to a root of the bundle in use.
   */
  async restore(): Promise<void> {
    let state: PersistedState | undefined;
    try {
      state = await this.stateFile.read();
    } catch (error) {
      this.options.log?.(
        'warn',
        'the persisted trust state is unreadable; starting from the configured bundle',
        {
          error: String(error),
        },
      );
    }
    if (!state) return;
    try {
      const candidates = [...rootsOf(state.signedBundle.bundle), ...rootsOf(this.bundle)];
      const persisted = verifyTrustBundle(state.signedBundle, candidates, this.options.trustDomain);
      if (persisted.version >= this.bundle.version) this.signedBundle = state.signedBundle;
      const intermediate = new X509Certificate(state.intermediatePem);
      const ours = intermediate.publicKey.equals(createPublicKey(this.intermediate.privateKey));
      const newer = new Date(intermediate.validFrom) >= new Date(this.intermediate.certificate.validFrom);
      if (ours && newer && rootOf(intermediate, this.bundle)) {
        this.intermediate = loadCertificateAuthority(state.intermediatePem, this.intermediate.privateKey);
      }
      this.options.log?.('info', 'restored the last-known-good trust state', {
        version: this.bundle.version,
      });
    } catch (error) {
      this.options.log?.(
        'warn',
        'the persisted trust state does not verify; starting from the configured bundle',
        {
          error: String(error),
        },
      );
    }
    this.updateMetrics();
  }

  /** Watches the bundle and this cluster's intermediate; publishes status every interval. */
  async attach(store: NatsTrustStore, statusIntervalMs: number): Promise<void> {
    this.stopWatch = await store.watch([BUNDLE_KEY, intermediateKey(this.options.cluster)], (entry) => {
      void this.onEntry(entry);
    });
    const publish = (): void => {
      store.putStatus(this.status()).catch((error: unknown) => {
        this.options.log?.('warn', 'could not publish trust status', { error: String(error) });
      });
    };
    publish();
    this.statusTimer = setInterval(publish, statusIntervalMs);
  }

  detach(): void {
    this.stopWatch?.();
    if (this.statusTimer) clearInterval(this.statusTimer);
  }

  status(): ClusterTrustStatus {
    return {
      cluster: this.options.cluster,
      bundleVersion: this.bundle.version,
      bundleHash: bundleHash(this.bundle),
      intermediate: this.intermediate.certificate.fingerprint256,
      intermediateRoot: rootOf(this.intermediate.certificate, this.bundle)?.fingerprint256 ?? 'unknown',
      workloads: this.options.workloads(),
      time: new Date().toISOString(),
    };
  }

  /**
   * Queues one record from NATS. Records are applied one at a time; a failure is logged
   * and counted, never thrown (the watcher must keep running).
   */
  onEntry(entry: TrustEntry): Promise<void> {
    this.queue = this.queue.then(() =>
      this.apply(entry).catch((error: unknown) => {
        this.rejected.inc({ kind: entry.key === BUNDLE_KEY ? 'bundle' : 'intermediate', reason: 'error' });
        this.options.log?.('warn', 'a trust record could not be applied; keeping the current state', {
          key: entry.key,
          error: String(error),
        });
      }),
    );
    return this.queue;
  }

  private async apply(entry: TrustEntry): Promise<void> {
    if (entry.operation !== 'PUT') return;
    let changed = false;
    if (entry.key === BUNDLE_KEY) {
      changed = this.applyBundle(entry.text);
      if (changed && this.waitingIntermediate) this.applyIntermediate(this.waitingIntermediate);
    } else {
      changed = this.applyIntermediate(entry.text);
    }
    if (!changed) return;
    this.updateMetrics();
    // Serving certificates are updated before the state is persisted or reported, so that
    // a status saying "new intermediate" means everything here uses it.
    for (const listener of this.listeners) await listener();
    await this.persist();
  }

  private applyBundle(text: string): boolean {
    const decision = decideBundle(this.bundle, text, this.options.trustDomain);
    if (!decision.accept) {
      if (decision.reason !== 'replay') {
        this.rejected.inc({ kind: 'bundle', reason: decision.reason });
        this.options.log?.('warn', 'trust bundle refused; keeping the current one', {
          reason: decision.reason,
          detail: decision.detail,
        });
      }
      return false;
    }
    this.signedBundle = decision.value;
    this.options.log?.('info', 'trust bundle accepted', {
      version: this.bundle.version,
      hash: bundleHash(this.bundle),
    });
    if (!rootOf(this.intermediate.certificate, this.bundle)) {
      this.options.log?.(
        'warn',
        'the accepted bundle no longer holds the root of this cluster’s intermediate',
        {
          intermediate: this.intermediate.certificate.fingerprint256,
        },
      );
    }
    return true;
  }

  private applyIntermediate(pem: string): boolean {
    const decision = decideIntermediate({
      pem,
      ownPublicKey: createPublicKey(this.intermediate.privateKey),
      cluster: this.options.cluster,
      trustDomain: this.options.trustDomain,
      bundle: this.bundle,
      current: this.intermediate.certificate,
    });
    if (!decision.accept) {
      if (decision.reason === 'untrusted_signer') this.waitingIntermediate = pem;
      if (decision.reason !== 'unchanged') {
        this.rejected.inc({ kind: 'intermediate', reason: decision.reason });
        this.options.log?.('warn', 'intermediate refused; keeping the current one', {
          reason: decision.reason,
          detail: decision.detail,
        });
      }
      return false;
    }
    this.waitingIntermediate = undefined;
    this.intermediate = loadCertificateAuthority(pem, this.intermediate.privateKey);
    this.options.log?.('info', 'intermediate re-issued', { fingerprint: decision.value.fingerprint256 });
    return true;
  }

  private updateMetrics(): void {
    this.version.set(this.bundle.version);
    this.info.reset();
    this.info.set(
      { bundle_hash: bundleHash(this.bundle), intermediate: this.intermediate.certificate.fingerprint256 },
      1,
    );
  }

  private async persist(): Promise<void> {
    this.stateFile.write({
      signedBundle: this.signedBundle,
      intermediatePem: this.intermediate.certificatePem,
    });
    await this.stateFile.flush();
  }
}
