/** Trust material over NATS: the signed bundle, re-issued intermediates, cluster reports. */
export { BUNDLE_KEY, intermediateKey, statusKey, TRUST_BUCKET, type ClusterTrustStatus } from './keys.ts';
export { NatsTrustStore, type TrustEntry } from './nats-trust-store.ts';
export { decideBundle, decideIntermediate, rootOf, rootsOf, type Decision } from './decisions.ts';
export { ControllerTrust, type ControllerTrustOptions } from './controller-trust.ts';
export {
  rotateRoot,
  RotationError,
  type RotationOptions,
  type RotationRecord,
  type RotationStep,
} from './rotation.ts';
export {
  startTrustController,
  type TrustController,
  type TrustControllerOptions,
} from './trust-controller.ts';
