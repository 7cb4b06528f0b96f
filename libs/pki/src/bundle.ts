import { createHash, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError } from './errors.ts';
import { splitPemCertificates } from './ca.ts';

/** The set of trusted roots of a trust domain, versioned. */
export interface TrustBundle {
  readonly trustDomain: string;
  /** Increases with every change; older versions are replays and are ignored. */
  readonly version: number;
  readonly issuedAt: string;
  /** PEM root certificates. */
  readonly roots: readonly string[];
}

/** A bundle signed by a root that the receiver already trusts. */
export interface SignedTrustBundle {
  readonly bundle: TrustBundle;
  /** SHA-256 fingerprint (`AA:BB:…`) of the signing root. */
  readonly signer: string;
  /** Base64 signature over the canonical JSON of `bundle`. */
  readonly signature: string;
}

/** The bytes that are signed: the bundle's fields in a fixed order. */
export function canonicalBundleBytes(bundle: TrustBundle): Buffer {
  return Buffer.from(
    JSON.stringify({
      trustDomain: bundle.trustDomain,
      version: bundle.version,
      issuedAt: bundle.issuedAt,
      roots: [...bundle.roots],
    }),
  );
}

/** A short, order-independent hash of the roots, reported by clusters during rotation. */
export function bundleHash(bundle: Pick<TrustBundle, 'roots'>): string {
  const fingerprints = bundle.roots.map((pem) => new X509Certificate(pem).fingerprint256).sort();
  return createHash('sha256').update(fingerprints.join('\n')).digest('hex').slice(0, 16);
}

export function signTrustBundle(
  bundle: TrustBundle,
  signer: { certificate: X509Certificate; privateKey: KeyObject },
): SignedTrustBundle {
  return {
    bundle,
    signer: signer.certificate.fingerprint256,
    signature: sign('sha256', canonicalBundleBytes(bundle), signer.privateKey).toString('base64'),
  };
}

/**
 * Accepts a signed bundle only if its signer is one of `trustedRoots` and the signature
 * verifies (OpenSSL), the trust domain is ours, and every root is a CA certificate.
 * Anything else throws CAUSEWAY_PKI_BAD_BUNDLE and the caller keeps its current bundle.
 */
export function verifyTrustBundle(
  signed: unknown,
  trustedRoots: readonly X509Certificate[],
  trustDomain: string,
): TrustBundle {
  const bad = (why: string, cause?: unknown): PkiError =>
    new PkiError('CAUSEWAY_PKI_BAD_BUNDLE', `trust bundle refused: ${why}`, cause ? { cause } : undefined);
  if (!signed || typeof signed !== 'object') throw bad('not an object');
  const candidate = signed as Partial<SignedTrustBundle>;
  const bundle = candidate.bundle;
  if (!bundle || typeof candidate.signer !== 'string' || typeof candidate.signature !== 'string') {
    throw bad('unsigned (no signer or signature)');
  }
  if (
    typeof bundle.trustDomain !== 'string' ||
    !Number.isSafeInteger(bundle.version) ||
    typeof bundle.issuedAt !== 'string' ||
    !Array.isArray(bundle.roots) ||
    bundle.roots.some((root) => typeof root !== 'string')
  ) {
    throw bad('malformed bundle fields');
  }
  if (bundle.trustDomain !== trustDomain)
    throw bad(`it is for trust domain '${bundle.trustDomain}', not '${trustDomain}'`);
  const signer = trustedRoots.find((root) => root.fingerprint256 === candidate.signer);
  if (!signer) throw bad(`its signer ${candidate.signer} is not a root this cluster trusts`);
  if (
    !verify(
      'sha256',
      canonicalBundleBytes(bundle),
      signer.publicKey,
      Buffer.from(candidate.signature, 'base64'),
    )
  ) {
    throw bad('the signature does not verify');
  }
  if (bundle.roots.length === 0) throw bad('it has no roots');
  for (const pem of bundle.roots) {
    let root: X509Certificate;
    try {
      const blocks = splitPemCertificates(pem);
      if (blocks.length !== 1) throw new Error(`expected one certificate, found ${blocks.length}`);
      root = new X509Certificate(pem);
    } catch (error) {
      throw bad('a root is not a certificate', error);
    }
    if (!root.ca || !root.checkIssued(root) || !root.verify(root.publicKey))
      throw bad(`root ${root.fingerprint256} is not a self-signed CA`);
  }
  return bundle;
}
