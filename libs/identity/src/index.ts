/**
 * Workload identity: the controller's signing service (CSR + proof -> certificate) and the
 * proxy-side renewer that keeps a certificate fresh.
 */
export { IdentityError, type IdentityErrorCode } from './errors.ts';
export {
  callerFromUsername,
  JoinTokenVerifier,
  type JoinToken,
  type ProofVerifier,
  type ProvenCaller,
} from './proof.ts';
// TokenReviewVerifier is `@causeway/identity/token-review`: it loads the Kubernetes client,
// which proxies do not need.
export { authorizeCsr, type AuthorizedWorkload } from './authorize.ts';
export { IssuedCertificates, type IssuedEntry } from './issued-registry.ts';
export {
  buildSigningService,
  type ProofMode,
  type SignedCertificateResponse,
  type SigningServiceOptions,
  type TrustStatusResponse,
} from './signing-service.ts';
export {
  CertificateRenewer,
  checkControllerIdentity,
  renewalDelay,
  type RenewerOptions,
  type WorkloadCredentials,
} from './renewer.ts';
