/**
 * The federation controller's catalog half: local ServiceExports derived into signed
 * records, the clusterset catalog followed, ServiceImports and conditions planned, routes
 * and policies compiled for proxies. One event queue and a pure `plan` (catalog-plan.ts).
 */
export { startCatalogController, type CatalogController } from './catalog-controller.ts';
export { ExportReconciler, type LocalExportEvent } from './export-reconciler.ts';
export type { TrafficPolicyVerdict } from './traffic-policies.ts';
