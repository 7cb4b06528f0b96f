/**
 * The clusterset catalog: pure merge of every cluster's exports into ServiceImports with
 * the Multi-Cluster Services API's conflict rules.
 */
export type {
  ConflictReason,
  ExportedPort,
  ExportedService,
  ExportVerdict,
  ImportType,
  MergedService,
  PortProtocol,
} from './types.ts';
export { byPrecedence, mergeCatalog, mergeService } from './merge.ts';
export { conflictCondition, type ConditionValue } from './conditions.ts';
export {
  canonicalRecordBytes,
  signExportRecord,
  signHeartbeat,
  storedAs,
  verifyExportRecord,
  verifyHeartbeat,
  verifySigner,
  verifySignerPem,
  type ExportRecord,
  type Heartbeat,
  type RecordRefusal,
  type SignedHeartbeat,
  type SignedExportRecord,
  type VerifiedSigner,
} from './records.ts';
export { CatalogState, recordKey, type ApplyOutcome } from './state.ts';
export {
  CATALOG_BUCKET,
  CatalogBus,
  CatalogSync,
  exportKey,
  heartbeatKey,
  MAX_WAITING_PER_CLUSTER,
  signerKey,
  type PeerStatus,
} from './catalog-sync.ts';
export {
  deriveLocalExport,
  servicePorts,
  type EndpointSliceView,
  type LocalExport,
  type ServiceExportView,
  type ServiceView,
} from './local-export.ts';
export {
  buildClusterset,
  withdrawals,
  type Backend,
  type ClustersetService,
  type LocalEndpoint,
  type Withdrawals,
} from './clusterset.ts';
export { NATS_MAX_PINGS_OUT, NATS_PING_INTERVAL_MS, NatsLink, type NatsCondition } from './nats-link.ts';
