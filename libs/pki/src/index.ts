/**
 * Causeway's PKI: root and cluster intermediate CAs, SPIFFE workload certificates, CSRs,
 * signed trust bundles. node:crypto makes keys and signatures; node-forge lays out the
 * X.509 structures; OpenSSL (node:crypto, node:tls) does every verification.
 */
export { PkiError } from './errors.ts';
export { generateKeyPair, keyTypeOf, KEY_TYPES, privateKeyToPem, type KeyType } from './keys.ts';
export { clusterSpiffeId, parseSpiffeId, workloadSpiffeId, type SpiffeId } from './spiffe.ts';
export { issueCertificate } from './certificate.ts';
export {
  createRootCa,
  DAY_MS,
  issueComponentCertificate,
  issueIntermediateCa,
  issueWorkloadCertificate,
  loadCertificateAuthority,
  splitPemCertificates,
  type CertificateAuthority,
} from './ca.ts';
export { createCsr, parseCsr, type ParsedCsr } from './csr.ts';
export { spiffeIdOf, verifySvid, type VerifiedIdentity } from './verify.ts';
export { uriSans } from './san.ts';
export {
  bundleHash,
  signTrustBundle,
  verifyTrustBundle,
  type SignedTrustBundle,
  type TrustBundle,
} from './bundle.ts';
export { TrustDirectory } from './trust-dir.ts';
export { peerIdentity } from './tls-identity.ts';
