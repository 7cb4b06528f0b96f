/**
 * Names on the wire between clusters. A sidecar reaching a service through another
 * cluster's east-west gateway puts the service and port in the TLS server name (SNI), in
 * Istio's form, so the gateway can route without terminating TLS:
 * `outbound_.<port>_._.<service>.<namespace>.svc.clusterset.local`.
 */

const CLUSTERSET_SUFFIX = '.svc.clusterset.local';
const SNI =
  /^outbound_\.(\d{1,5})_\._\.([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\.([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\.svc\.clusterset\.local$/;

export interface ServiceAddress {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
}

/** The server name a sidecar sends for a service port behind a remote east-west gateway. */
export function serviceSni(target: ServiceAddress): string {
  return `outbound_.${target.port}_._.${target.name}.${target.namespace}${CLUSTERSET_SUFFIX}`;
}

/** The service port a server name names, or undefined. */
export function parseServiceSni(serverName: string): ServiceAddress | undefined {
  const match = SNI.exec(serverName);
  if (!match) return undefined;
  const port = Number(match[1]);
  if (port < 1 || port > 65_535) return undefined;
  return { port, name: match[2]!, namespace: match[4]! };
}

/** The server name of a cluster's east-west gateway probe target. */
export function probeSni(cluster: string): string {
  return `probe.${cluster}.causeway.internal`;
}
