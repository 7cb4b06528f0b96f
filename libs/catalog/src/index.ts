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
