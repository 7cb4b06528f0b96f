/**
 * The discovery API between a federation controller and its cluster's proxies: complete,
 * versioned config snapshots streamed over mTLS and acknowledged by version.
 */
export { type ProxyConfig, type ProxyKind, type Workload, type SnapshotMessage } from './snapshot.ts';
export { DiscoveryServer, type ProxyStatus } from './server.ts';
export { DiscoveryClient, PROXY_RECONNECT_MAX_MS } from './client.ts';
export type { ControllerStatus } from './status.ts';
export {
  compileRoutes,
  CONTROLLER_NAME,
  type CompiledRoute,
  type PolicyView,
  type ReferenceGrantView,
  type RefKind,
  type RouteParentStatus,
  type RouteView,
} from './routes.ts';
export { dataPlaneMode, type DataPlaneMode } from './mode.ts';
export {
  attachRoute,
  compileGateways,
  GATEWAY_CLASS,
  hostnameMatches,
  listenerHostnames,
  type CompiledGateway,
  type CompiledListener,
  type GatewayStatus,
  type GatewayView,
  type SecretView,
} from './gateways.ts';
