/** The data plane: east-west gateway, sidecar, and what they share. */
export { MAX_CLIENT_HELLO, parseClientHello, type ClientHelloResult } from './client-hello.ts';
export { EastWestGateway, type EastWestGatewayOptions, type RefusalReason } from './east-west.ts';
export { parseServiceSni, probeSni, serviceSni, type ServiceAddress } from './names.ts';
export { proxyIdentitySettings, startProxyIdentity, type ProxyIdentity } from './proxy-identity.ts';
export { authorize, policiesFor, type CallFacts, type Decision } from './authz.ts';
export { resolveDestination, routeRequest, targetsFor, type Destination, type Target } from './routing.ts';
export { Sidecar, type InboundPort, type SidecarOptions } from './sidecar.ts';
