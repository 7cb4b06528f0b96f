/** The JetStream KV bucket that carries the federation's trust material. */
export const TRUST_BUCKET = 'causeway-trust';
/** The signed trust bundle (written by `causeway trust publish` / `rotate`). */
export const BUNDLE_KEY = 'bundle';
/** A cluster's intermediate certificate re-issued during a rotation (public part only). */
export const intermediateKey = (cluster: string): string => `intermediate.${cluster}`;
/** What a cluster's controller reports about its trust state. */
export const statusKey = (cluster: string): string => `status.${cluster}`;

/** A controller's trust report, read by `causeway trust rotate` and `causeway status`. */
export interface ClusterTrustStatus {
  readonly cluster: string;
  readonly bundleVersion: number;
  readonly bundleHash: string;
  /** Fingerprint of the intermediate that signs now, and of the root it chains to. */
  readonly intermediate: string;
  readonly intermediateRoot: string;
  /** Unexpired workload certificates by the root they chain to and by bundle hash. */
  readonly workloads: { readonly byRoot: Record<string, number>; readonly byBundle: Record<string, number> };
  readonly time: string;
}
