import { X509Certificate, type KeyObject } from 'node:crypto';
import {
  clusterSpiffeId,
  PkiError,
  uriSans,
  verifyTrustBundle,
  type SignedTrustBundle,
  type TrustBundle,
} from '@causeway/pki';

/** Outcome of a candidate: take it, or keep what we have and say why. */
export type Decision<T> = { accept: true; value: T } | { accept: false; reason: string; detail: string };

export const rootsOf = (bundle: TrustBundle): X509Certificate[] =>
  bundle.roots.map((pem) => new X509Certificate(pem));

/**
 * A bundle from NATS replaces ours only if a root we trust now signed it, it is for our
 * trust domain, and its version is newer (older or equal versions are replays).
 */
export function decideBundle(
  current: TrustBundle,
  text: string,
  trustDomain: string,
): Decision<SignedTrustBundle> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { accept: false, reason: 'malformed', detail: 'not JSON' };
  }
  let bundle: TrustBundle;
  try {
    bundle = verifyTrustBundle(parsed, rootsOf(current), trustDomain);
  } catch (error) {
    const message = error instanceof PkiError ? error.message : String(error);
    const reason = /unsigned/.test(message)
      ? 'unsigned'
      : /signer .* not a root/.test(message)
        ? 'untrusted_signer'
        : 'invalid';
    return { accept: false, reason, detail: message };
  }
  if (bundle.version <= current.version) {
    return {
      accept: false,
      reason: 'replay',
      detail: `version ${bundle.version} is not newer than ${current.version}`,
    };
  }
  return { accept: true, value: parsed as SignedTrustBundle };
}

/**
 * A re-issued intermediate is taken only if it is for our own key and cluster, is a CA,
 * is valid now, and chains to a root of our current bundle.
 */
export function decideIntermediate(options: {
  pem: string;
  ownPublicKey: KeyObject;
  cluster: string;
  trustDomain: string;
  bundle: TrustBundle;
  /** The intermediate in use: a candidate must be newer (a replayed older one is refused). */
  current: X509Certificate;
  now?: Date;
}): Decision<X509Certificate> {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(options.pem);
  } catch {
    return { accept: false, reason: 'malformed', detail: 'not a certificate' };
  }
  if (certificate.fingerprint256 === options.current.fingerprint256) {
    return { accept: false, reason: 'unchanged', detail: 'already in use' };
  }
  if (new Date(certificate.validFrom) <= new Date(options.current.validFrom)) {
    return { accept: false, reason: 'replay', detail: 'it is not newer than the intermediate in use' };
  }
  if (!certificate.publicKey.equals(options.ownPublicKey)) {
    return {
      accept: false,
      reason: 'foreign_key',
      detail: 'it certifies a key that is not this cluster’s intermediate key',
    };
  }
  const expected = clusterSpiffeId(options.trustDomain, options.cluster);
  let uris: string[];
  try {
    uris = uriSans(certificate);
  } catch (error) {
    return { accept: false, reason: 'invalid', detail: (error as Error).message };
  }
  if (!certificate.ca || uris.length !== 1 || uris[0] !== expected) {
    return { accept: false, reason: 'invalid', detail: `not a CA certificate for ${expected}` };
  }
  const now = options.now ?? new Date();
  if (now < new Date(certificate.validFrom) || now > new Date(certificate.validTo)) {
    return { accept: false, reason: 'invalid', detail: 'not valid now' };
  }
  const root = rootsOf(options.bundle).find(
    (r) => certificate.checkIssued(r) && certificate.verify(r.publicKey),
  );
  if (!root)
    return { accept: false, reason: 'untrusted_signer', detail: 'it does not chain to a trusted root' };
  return { accept: true, value: certificate };
}

/** The trusted root an intermediate chains to. */
export function rootOf(intermediate: X509Certificate, bundle: TrustBundle): X509Certificate | undefined {
  return rootsOf(bundle).find((r) => intermediate.checkIssued(r) && intermediate.verify(r.publicKey));
}
