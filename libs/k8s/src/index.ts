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
} from './catalog-controller.ts';
