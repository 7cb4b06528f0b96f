/** The data plane: east-west gateway, sidecar, and what they share. */
export { EastWestGateway } from './east-west.ts';
export { probeSni, serviceSni } from './names.ts';
export { proxyIdentitySettings, startProxyIdentity } from './proxy-identity.ts';
export { authorize, type Decision } from './authz.ts';
export { type Target } from './routing.ts';
export { Sidecar } from './sidecar.ts';
