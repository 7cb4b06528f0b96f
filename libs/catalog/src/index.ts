/**
 * The clusterset catalog: signed records, their verification and pure merge into
 * ServiceImports with the Multi-Cluster Services API's conflict rules, the clusterset view
 * for proxies, and `CatalogSync`, which follows any `CatalogFeed` (the NATS adapter is in
 * `@causeway/nats`). No NATS code here.
 */
export type { ExportVerdict, MergedService } from './types.ts';
export { conflictCondition, type ConditionValue } from './conditions.ts';
export {
  signExportRecord,
  signHeartbeat,
  storedAs,
  verifySignerPem,
  type ExportRecord,
  type SignedExportRecord,
  type SignedHeartbeat,
  type VerifiedSigner,
} from './records.ts';
export { type ApplyOutcome } from './state.ts';
export {
  CATALOG_BUCKET,
  CatalogSync,
  exportKey,
  heartbeatKey,
  MAX_WAITING_PER_CLUSTER,
  signerKey,
  type CatalogFeed,
  type PeerStatus,
} from './catalog-sync.ts';
export {
  deriveLocalExport,
  servicePorts,
  type LocalExport,
  type ServiceExportView,
  type ServiceView,
} from './local-export.ts';
export {
  buildClusterset,
  withdrawals,
  type ClustersetService,
  type LocalEndpoint,
  type Withdrawals,
} from './clusterset.ts';
