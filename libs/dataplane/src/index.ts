/** The data plane: east-west gateway, sidecar, and what they share. */
export { EastWestGateway, REFUSAL_REASONS, type RefusalReason } from './east-west.ts';
export { probeSni, serviceSni } from './names.ts';
export { proxyIdentitySettings, startProxyIdentity } from './proxy-identity.ts';
export { authorize, type Decision } from './authz.ts';
export { backendDestination, memo, type Destination, type RoutedBackend, type Target } from './routing.ts';
export { OutboundProxy, type ForwardRequest, type OutboundOptions } from './outbound.ts';
export { H1Exchange, H2Exchange, type AppExchange } from './exchange.ts';
export type { UpstreamAnswer } from './responses.ts';
export { ConnectionMetrics, RequestMetrics } from './telemetry.ts';
export { endToEnd, GRPC, grpcStatusForHttp, headerFieldCount, isGrpc } from './http-util.ts';
export { Sidecar } from './sidecar.ts';
export { pathNormalizationSetting } from './settings.ts';
