/**
 * The discovery API between a federation controller and its cluster's proxies: complete,
 * versioned config snapshots streamed over mTLS and acknowledged by version.
 */
export {
  compileSnapshot,
  PROXY_KINDS,
  proxyConfigSchema,
  snapshotMessageSchema,
  type DiscoveryInput,
  type ProxyConfig,
  type ProxyKind,
  type Registration,
  type Workload,
  type SnapshotMessage,
} from './snapshot.ts';
export { DiscoveryError, DiscoveryServer, KEEPALIVE_MS, type ProxyStatus } from './server.ts';
export { DiscoveryClient, type ClientCredentials, type DiscoveryClientOptions } from './client.ts';
export type { ControllerStatus } from './status.ts';
export {
  compileRoutes,
  CONTROLLER_NAME,
  type CompiledRoute,
  type ParentReference,
  type PolicyView,
  type ReferenceGrantView,
  type RefKind,
  type RouteParentStatus,
  type RouteView,
} from './routes.ts';
export { dataPlaneMode, type DataPlaneMode, type ModeDecision } from './mode.ts';
