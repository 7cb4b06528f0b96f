/** Kubernetes resource definitions shared by the controller, the CLI and the test bed. */
export {
  CRD_FILES,
  GATEWAY_GROUP,
  MCS_GROUP,
  POLICY_GROUP,
  renderCrdFiles,
  type CrdDefinition,
} from './crds/index.ts';
export { describeEvent, ExportReconciler, type LocalExportEvent } from './export-reconciler.ts';
export { ImportWriter, SERVICE_NAME_LABEL, SOURCE_CLUSTER_LABEL } from './import-writer.ts';
export {
  startCatalogController,
  type CatalogController,
  type CatalogControllerOptions,
  type ServiceExportStatus,
} from './catalog-controller.ts';
export { FileSource, WorkloadConflictError } from './file-source.ts';
export { parseObjects, FILE_KINDS } from './file-objects.ts';
export { KubernetesSource } from './kubernetes-source.ts';
export {
  SOURCE_KINDS,
  type ClusterSource,
  type SourceEvent,
  type SourceKind,
  type SourceObject,
  type SourceProblem,
} from './source.ts';
