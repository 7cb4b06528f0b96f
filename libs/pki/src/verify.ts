import type { X509Certificate } from 'node:crypto';
import { PkiError } from './errors.ts';
import { uriSans } from './san.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe.ts';

/** What a verified SVID proves. */
export interface VerifiedIdentity {
  readonly spiffeId: SpiffeId;
  /** The cluster whose intermediate CA issued the certificate (its URI SAN). */
  readonly cluster: string;
  readonly notAfter: Date;
  /** Serial number of the leaf (hex), to tell certificates of one identity apart. */
  readonly serialNumber: string;
  /** SHA-256 fingerprint of the trusted root the chain ends in. */
  readonly rootFingerprint: string;
}

export interface VerifyOptions {
  /** Leaf first, then its intermediate CA. */
  readonly chain: readonly X509Certificate[];
  readonly roots: readonly X509Certificate[];
  readonly trustDomain: string;
  readonly now?: Date;
}

function checkValidity(certificate: X509Certificate, now: Date, what: string): void {
  if (now < new Date(certificate.validFrom)) {
    throw new PkiError('CAUSEWAY_PKI_NOT_YET_VALID', `${what} is not valid before ${certificate.validFrom}`);
  }
  if (now > new Date(certificate.validTo)) {
    throw new PkiError('CAUSEWAY_PKI_EXPIRED', `${what} expired at ${certificate.validTo}`);
  }
}

/** The one SPIFFE ID a certificate names, checked against the trust domain. */
export function spiffeIdOf(
  certificate: X509Certificate,
  trustDomain: string,
  what = 'certificate',
): SpiffeId {
  const uris = uriSans(certificate);
  if (uris.length === 0) throw new PkiError('CAUSEWAY_PKI_NOT_SPIFFE', `${what} has no URI SAN`);
  if (uris.length > 1) {
    throw new PkiError(
      'CAUSEWAY_PKI_MULTIPLE_URI_SANS',
      `${what} has ${uris.length} URI SANs; an SVID has exactly one`,
    );
  }
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (error) {
    throw new PkiError('CAUSEWAY_PKI_NOT_SPIFFE', `${what}: ${(error as Error).message}`, { cause: error });
  }
  if (id.trustDomain !== trustDomain) {
    throw new PkiError(
      'CAUSEWAY_PKI_FOREIGN_TRUST_DOMAIN',
      `${what} is in trust domain '${id.trustDomain}', not '${trustDomain}'`,
    );
  }
  return id;
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  // `a.checkIssued(b)`: "a was issued by b".
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

/**
 * Verifies an X.509-SVID chain with OpenSSL's primitives (`X509Certificate.verify`,
 * `checkIssued`) and applies Causeway's SPIFFE rules: exactly one URI SAN with scheme
 * spiffe in the trust domain, a leaf that is not a CA, issued by a cluster intermediate
 * (`spiffe://<td>/cluster/<name>`) that chains to a trusted root, and cluster-scoped
 * identities only from their own cluster's intermediate.
 */
export function verifySvid(options: VerifyOptions): VerifiedIdentity {
  const now = options.now ?? new Date();
  const [leaf, intermediate] = options.chain;
  if (!leaf) throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', 'no certificate presented');
  if (leaf.ca)
    throw new PkiError('CAUSEWAY_PKI_LEAF_IS_CA', 'the leaf certificate is a CA (basicConstraints CA=true)');
  const spiffeId = spiffeIdOf(leaf, options.trustDomain, 'the leaf certificate');
  checkValidity(leaf, now, 'the leaf certificate');
  if (!intermediate) {
    throw new PkiError('CAUSEWAY_PKI_CLUSTER_MISMATCH', 'no cluster intermediate CA follows the leaf');
  }
  if (!intermediate.ca)
    throw new PkiError('CAUSEWAY_PKI_ISSUER_NOT_CA', 'the issuer of the leaf is not a CA');
  if (!issuedBy(leaf, intermediate)) {
    throw new PkiError(
      'CAUSEWAY_PKI_BAD_SIGNATURE',
      'the leaf was not signed by the intermediate that follows it',
    );
  }
  checkValidity(intermediate, now, 'the intermediate CA');
  const issuerId = spiffeIdOf(intermediate, options.trustDomain, 'the intermediate CA');
  if (issuerId.kind !== 'cluster') {
    throw new PkiError(
      'CAUSEWAY_PKI_CLUSTER_MISMATCH',
      `the intermediate CA names '${issuerId.uri}', not a cluster`,
    );
  }
  if (
    (spiffeId.kind === 'cluster' || spiffeId.kind === 'component') &&
    spiffeId.cluster !== issuerId.cluster
  ) {
    throw new PkiError(
      'CAUSEWAY_PKI_CLUSTER_MISMATCH',
      `'${spiffeId.uri}' is scoped to cluster ${spiffeId.cluster} but was issued by cluster ${issuerId.cluster}'s CA`,
    );
  }
  const root = options.roots.find((candidate) => candidate.ca && issuedBy(intermediate, candidate));
  if (!root) throw new PkiError('CAUSEWAY_PKI_UNTRUSTED_ROOT', 'the chain does not end in a trusted root');
  checkValidity(root, now, 'the root CA');
  return {
    spiffeId,
    cluster: issuerId.cluster,
    notAfter: new Date(leaf.validTo),
    serialNumber: leaf.serialNumber,
    rootFingerprint: root.fingerprint256,
  };
}
