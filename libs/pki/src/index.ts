/**
 * Causeway's PKI: root and cluster intermediate CAs, SPIFFE workload certificates, CSRs,
 * signed trust bundles. node:crypto makes keys and signatures; node-forge lays out the
 * X.509 structures; OpenSSL (node:crypto, node:tls) does every verification.
 */
export { PkiError, type PkiErrorCode } from './errors.ts';
export {
  generateKeyPair,
  keyTypeOf,
  KEY_TYPES,
  privateKeyToPem,
  publicKeyToPem,
  type KeyPair,
  type KeyType,
} from './keys.ts';
export {
  checkTrustDomain,
  clusterSpiffeId,
  componentSpiffeId,
  parseSpiffeId,
  workloadSpiffeId,
  type SpiffeId,
} from './spiffe.ts';
export { issueCertificate, type CertificateTemplate, type Signer } from './certificate.ts';
export {
  BACKDATE_MS,
  createRootCa,
  DAY_MS,
  DEFAULT_TTL_MS,
  HOUR_MS,
  issueComponentCertificate,
  issueIntermediateCa,
  issueLeafCertificate,
  issueWorkloadCertificate,
  loadCertificateAuthority,
  splitPemCertificates,
  type CertificateAuthority,
} from './ca.ts';
export { createCsr, parseCsr, type ParsedCsr } from './csr.ts';
export { spiffeIdOf, verifySvid, type VerifiedIdentity, type VerifyOptions } from './verify.ts';
export { subjectAltNames, uriSans } from './san.ts';
export {
  bundleHash,
  canonicalBundleBytes,
  signTrustBundle,
  verifyTrustBundle,
  type SignedTrustBundle,
  type TrustBundle,
} from './bundle.ts';
export { TrustDirectory, type TrustState, type WrittenFiles } from './trust-dir.ts';
export { IntermediateCache, peerIdentity } from './tls-identity.ts';
