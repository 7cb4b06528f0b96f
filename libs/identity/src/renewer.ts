import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import https from 'node:https';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { Backoff, StateFile } from '@causeway/config';
import {
  createCsr,
  generateKeyPair,
  privateKeyToPem,
  splitPemCertificates,
  verifySvid,
  workloadSpiffeId,
  type KeyType,
} from '@causeway/pki';
import type { SignedCertificateResponse, TrustStatusResponse } from './signing-service.ts';

/** What a proxy holds: its key, its chain and the roots it trusts. */
export interface WorkloadCredentials {
  readonly spiffeId: string;
  readonly privateKeyPem: string;
  /** PEM, leaf then intermediate. */
  readonly certificateChainPem: string;
  readonly roots: readonly string[];
  readonly bundleHash: string;
  /** SHA-256 fingerprint of the intermediate that issued the leaf. */
  readonly issuer: string;
  readonly serial: string;
  readonly receivedAt: Date;
  readonly notAfter: Date;
}

export interface RenewerOptions {
  /** `https://host:port` of the controller's signing service. */
  readonly controllerUrl: string;
  /** Roots that verify the controller's certificate at first; later, the latest bundle. */
  readonly bootstrapRoots: readonly string[];
  readonly trustDomain: string;
  /** The cluster whose controller signs: its certificate must be `…/cluster/<cluster>/federation-controller`. */
  readonly cluster: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Distinguishes replicas in the controller's records. */
  readonly instance: string;
  /** The proof: a service-account token or a join token. Called for each request. */
  readonly token: () => string | Promise<string>;
  readonly keyType?: KeyType;
  /** Renew at 50% of the lifetime, ± this fraction of it (default 0.1). */
  readonly jitter?: number;
  /** How often to ask the controller whether the trust bundle or its intermediate changed. */
  readonly trustPollMs?: number;
  /** Called with every new set of credentials, after it is complete. */
  readonly onCredentials: (credentials: WorkloadCredentials) => void;
  readonly onError?: (error: Error) => void;
  /**
   * Where the credentials are kept (mode 0600), so that a proxy restarted while its
   * controller is away starts from them (while they are valid) instead of waiting for it.
   */
  readonly statePath?: string;
}

/** The saved credentials must stay valid at least this long to be used at start. */
const SAVED_MIN_LIFE_MS = 60_000;

/**
 * A `checkServerIdentity` for TLS connections to a federation controller: it is identified
 * by its SPIFFE ID and must be this cluster's. A certificate for
 * `…/cluster/<ours>/federation-controller` minted by another cluster's intermediate is refused.
 */
export function checkControllerIdentity(options: {
  trustDomain: string;
  cluster: string;
  roots: readonly string[];
}): (host: string, peer: PeerCertificate) => Error | undefined {
  const expected = `spiffe://${options.trustDomain}/cluster/${options.cluster}/federation-controller`;
  return (_host, peer) => {
    try {
      const detailed = peer as DetailedPeerCertificate;
      const chain = [new X509Certificate(detailed.raw)];
      if (detailed.issuerCertificate?.raw && !detailed.issuerCertificate.raw.equals(detailed.raw)) {
        chain.push(new X509Certificate(detailed.issuerCertificate.raw));
      }
      const id = verifySvid({
        chain,
        roots: options.roots.map((pem) => new X509Certificate(pem)),
        trustDomain: options.trustDomain,
      });
      if (id.spiffeId.uri !== expected || id.cluster !== options.cluster) {
        return new Error(
          `the controller is ${id.spiffeId.uri} from cluster ${id.cluster}, expected ${expected}`,
        );
      }
      return undefined;
    } catch (error) {
      return error as Error;
    }
  };
}

const FIRST_RETRY_MS = 200;
const MAX_RETRY_MS = 10_000;

/** When to renew: half-way through the lifetime as received, with jitter. */
export function renewalDelay(receivedAt: Date, notAfter: Date, jitter: number, random = Math.random): number {
  const lifetime = notAfter.getTime() - receivedAt.getTime();
  const fraction = 0.5 + (random() * 2 - 1) * jitter;
  return Math.max(0, lifetime * fraction);
}

/**
 * Keeps a workload certificate fresh: obtains one at start, renews at 50% of its lifetime
 * with jitter, renews at once when the controller's bundle or intermediate changes, and
 * keeps the old credentials in use until new ones are complete. Failures retry with
 * backoff while the old certificate is still valid.
 */
export class CertificateRenewer {
  private credentials: WorkloadCredentials | undefined;
  /** When the current credentials are due for renewal; jitter is drawn once per certificate. */
  private renewAt = 0;
  /** The renewal in flight, shared by the loop and renewNow() so that they never race. */
  private renewing: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private wakeRetry: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly saved: StateFile<WorkloadCredentials> | undefined;

  constructor(private readonly options: RenewerOptions) {
    this.saved = options.statePath ? new StateFile(options.statePath) : undefined;
  }

  current(): WorkloadCredentials | undefined {
    return this.credentials;
  }

  /**
   * Starts from the saved credentials when they are still this proxy's and valid, else
   * obtains the first certificate (retrying); then keeps renewing in the background.
   */
  async start(): Promise<WorkloadCredentials> {
    if (!(await this.restore())) await this.renewWithRetry();
    this.loop = this.run();
    return this.credentials!;
  }

  private async restore(): Promise<boolean> {
    if (!this.saved) return false;
    const { options } = this;
    try {
      const raw = await this.saved.read();
      if (!raw) return false;
      if (typeof raw.certificateChainPem !== 'string' || typeof raw.privateKeyPem !== 'string')
        throw new Error('certificateChainPem or privateKeyPem is missing');
      // Only the file's certificate and key are taken from it, and only if the roots this
      // proxy was configured with (its trustBundle) verify them: a file that names roots of
      // its own cannot make the proxy trust them.
      const roots = options.bootstrapRoots;
      const { leaf, issuer } = this.check(
        raw.certificateChainPem,
        roots,
        createPrivateKey(raw.privateKeyPem),
      );
      const notAfter = new Date(leaf.validTo);
      if (notAfter.getTime() - Date.now() < SAVED_MIN_LIFE_MS)
        throw new Error(`it expires at ${notAfter.toISOString()}`);
      const issuedAt = new Date(Math.min(Date.parse(leaf.validFrom), Date.now()));
      this.accept({
        spiffeId: String(raw.spiffeId),
        privateKeyPem: raw.privateKeyPem,
        certificateChainPem: raw.certificateChainPem,
        roots,
        // Unknown: the first trust check with the controller renews, and brings its roots.
        bundleHash: '',
        issuer: issuer.fingerprint256,
        serial: leaf.serialNumber,
        receivedAt: issuedAt,
        notAfter,
      });
      // Renewed as soon as the controller answers (meanwhile these serve): that brings the
      // current trust bundle, which the configured roots may lag behind.
      this.renewAt = Date.now();
      return true;
    } catch (error) {
      options.onError?.(
        new Error(`the saved certificate is not usable (${(error as Error).message}); asking the controller`),
      );
      return false;
    }
  }

  /**
   * The chain must be this proxy's SPIFFE ID, from this cluster, under `roots`, for `key`;
   * its leaf and issuer, parsed.
   */
  private check(
    chainPem: string,
    roots: readonly string[],
    key: KeyObject,
  ): { leaf: X509Certificate; issuer: X509Certificate } {
    const { options } = this;
    const [leafPem, issuerPem] = splitPemCertificates(chainPem);
    if (!leafPem || !issuerPem) throw new Error('no certificate chain');
    const leaf = new X509Certificate(leafPem);
    const issuer = new X509Certificate(issuerPem);
    if (!leaf.checkPrivateKey(key)) throw new Error('the certificate is for another key');
    if (roots.length === 0) throw new Error('an empty trust bundle');
    const uri = workloadSpiffeId(options.trustDomain, options.namespace, options.serviceAccount);
    const identity = verifySvid({
      chain: [leaf, issuer],
      roots: roots.map((pem) => new X509Certificate(pem)),
      trustDomain: options.trustDomain,
    });
    if (identity.spiffeId.uri !== uri || identity.cluster !== options.cluster) {
      throw new Error(
        `the certificate is ${identity.spiffeId.uri} from cluster ${identity.cluster}, not ${uri} from ${options.cluster}`,
      );
    }
    return { leaf, issuer };
  }

  /** Puts complete credentials in use (and on disk), due for renewal half-way through their life. */
  private accept(credentials: WorkloadCredentials): void {
    this.credentials = credentials;
    this.renewAt =
      credentials.receivedAt.getTime() +
      renewalDelay(credentials.receivedAt, credentials.notAfter, this.options.jitter ?? 0.1);
    this.options.onCredentials(credentials);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.wakeRetry?.();
    await this.loop?.catch(() => {});
    await this.renewing?.catch(() => {});
    await this.saved?.flush().catch((error: unknown) => this.options.onError?.(error as Error));
  }

  /** Renews now (e.g. when told that the trust bundle changed). */
  async renewNow(): Promise<WorkloadCredentials> {
    await this.renewWithRetry();
    return this.credentials!;
  }

  private async run(): Promise<void> {
    const pollMs = this.options.trustPollMs ?? 30_000;
    while (!this.stopped) {
      const current = this.credentials!;
      const due = this.renewAt;
      const wait = Math.min(Math.max(0, due - Date.now()), pollMs);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.stopped) return;
      let renew = Date.now() >= due;
      if (!renew) {
        try {
          const trust = await this.request<TrustStatusResponse>('GET', '/v1/trust');
          renew = trust.intermediate !== current.issuer || trust.bundleHash !== current.bundleHash;
        } catch (error) {
          this.options.onError?.(error as Error);
        }
      }
      if (renew) await this.renewWithRetry();
    }
  }

  private renewWithRetry(): Promise<void> {
    this.renewing ??= this.retryUntilRenewed().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async retryUntilRenewed(): Promise<void> {
    const backoff = new Backoff({ firstMs: FIRST_RETRY_MS, maxMs: MAX_RETRY_MS });
    for (;;) {
      try {
        await this.renewOnce();
        return;
      } catch (error) {
        this.options.onError?.(error as Error);
        if (this.stopped) throw error;
        // A stop ends the wait at once (a proxy whose controller is away stops quickly).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff.next());
          this.wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeRetry = undefined;
        if (this.stopped) throw error;
      }
    }
  }

  private async renewOnce(): Promise<void> {
    const { options } = this;
    const keys = await generateKeyPair(options.keyType);
    const uri = workloadSpiffeId(options.trustDomain, options.namespace, options.serviceAccount);
    const csr = createCsr({ ...keys, uri });
    const response = await this.request<SignedCertificateResponse>('POST', '/v1/certificates', {
      csr,
      instance: options.instance,
    });
    if (!Array.isArray(response.trustBundle)) throw new Error('the controller returned no trust bundle');
    // The new chain must be what was asked for, from this cluster, under the new bundle.
    let checked: { leaf: X509Certificate; issuer: X509Certificate };
    try {
      checked = this.check(response.certificateChain, response.trustBundle, keys.privateKey);
    } catch (error) {
      throw new Error(`the controller's answer is refused: ${(error as Error).message}`);
    }
    const { leaf, issuer } = checked;
    const fresh: WorkloadCredentials = {
      spiffeId: response.spiffeId,
      privateKeyPem: privateKeyToPem(keys.privateKey),
      certificateChainPem: response.certificateChain,
      roots: response.trustBundle,
      bundleHash: response.bundleHash,
      issuer: issuer.fingerprint256,
      serial: leaf.serialNumber,
      receivedAt: new Date(),
      notAfter: new Date(leaf.validTo),
    };
    // Old credentials stay in use until this point: the new set is complete.
    this.accept(fresh);
    this.saved?.write(fresh);
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const { options } = this;
    const token = await options.token();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const roots = this.credentials?.roots ?? options.bootstrapRoots;
    return await new Promise<T>((resolve, reject) => {
      const request = https.request(
        new URL(path, options.controllerUrl),
        {
          method,
          ca: [...roots],
          agent: false,
          timeout: 10_000,
          headers: {
            authorization: `Bearer ${token}`,
            ...(payload
              ? { 'content-type': 'application/json', 'content-length': String(payload.length) }
              : {}),
          },
          checkServerIdentity: checkControllerIdentity({
            trustDomain: options.trustDomain,
            cluster: options.cluster,
            roots,
          }),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (response.statusCode !== 200) {
              reject(new Error(`signing service answered ${response.statusCode}: ${text}`));
              return;
            }
            try {
              resolve(JSON.parse(text) as T);
            } catch (error) {
              reject(error as Error);
            }
          });
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error(`${method} ${path} timed out`)));
      request.on('error', reject);
      request.end(payload);
    });
  }
}
