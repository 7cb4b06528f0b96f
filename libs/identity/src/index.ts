/**
 * Workload identity: the controller's signing service (CSR + proof -> certificate) and the
 * proxy-side renewer that keeps a certificate fresh.
 */
// TokenReviewVerifier is `@causeway/identity/token-review`: it loads the Kubernetes client,
// which proxies do not need.
export { IssuedCertificates } from './issued-registry.ts';
export {
  buildSigningService,
  SIGNING_SERVER_OPTIONS,
  signingRoutes,
  type ProofMode,
} from './signing-service.ts';
export { CertificateRenewer, checkControllerIdentity, type WorkloadCredentials } from './renewer.ts';
