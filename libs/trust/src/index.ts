/** Trust material over NATS: the signed bundle, re-issued intermediates, cluster reports. */
export { intermediateKey, TRUST_BUCKET } from './keys.ts';
export { NatsTrustStore } from './nats-trust-store.ts';
export { type Decision } from './decisions.ts';
export { rotateRoot } from './rotation.ts';
export { startTrustController, type TrustController } from './trust-controller.ts';
