import type { ProxyConfig } from '@causeway/discovery';
import { serviceSni } from './names.ts';
import type { ClusterPreference } from './balancer.ts';
import { trafficPolicyFor } from './traffic-policy.ts';

type Service = ProxyConfig['services'][number];

/** Where one attempt of a request goes: a local endpoint, or a remote cluster's gateway. */
export interface Target {
  /** Pool key: one pooled connection per target. */
  readonly key: string;
  readonly cluster: string;
  readonly local: boolean;
  readonly host: string;
  readonly port: number;
  /** The TLS server name: the service's SNI through a gateway, none for a local endpoint. */
  readonly servername?: string;
  /** SPIFFE IDs the server may present (from the catalog). */
  readonly identities: readonly string[];
}

/** A request's destination as the app addressed it. */
export interface Destination {
  readonly service: Service;
  readonly port: number;
  /** A cluster-local name (`svc.ns.svc.cluster.local`, `svc.ns`, `svc`): this cluster only. */
  readonly localOnly: boolean;
}

/** Answers computed from one config (configs are replaced whole, never changed in place). */
const memos = new WeakMap<ProxyConfig, Map<string, unknown>>();
/** Entries kept per config: enough for every name in use, not for an app making names up. */
const MEMO_ENTRIES = 4_096;

/** `compute()` once per config and key: the per-request work is a map lookup. */
export function memo<T>(config: ProxyConfig, key: string, compute: () => T): T {
  let entries = memos.get(config);
  if (!entries) memos.set(config, (entries = new Map()));
  if (entries.has(key)) return entries.get(key) as T;
  if (entries.size >= MEMO_ENTRIES) entries.clear();
  const value = compute();
  entries.set(key, value);
  return value;
}

/**
 * The config's entry for a service: by a cluster-local name, this cluster's own Service
 * (`scope: cluster`, when the clusterset does not serve it from here) before the clusterset
 * entry; by a clusterset name, the clusterset entry only.
 */
function serviceNamed(
  config: ProxyConfig,
  namespace: string,
  name: string,
  localOnly: boolean,
): Service | undefined {
  const named = (s: Service) => s.name === name && s.namespace === namespace;
  return localOnly
    ? (config.services.find((s) => s.scope === 'cluster' && named(s)) ?? config.services.find(named))
    : config.services.find((s) => s.scope !== 'cluster' && named(s));
}

/**
 * The destination a Gateway API backendRef names: a Service (this cluster's endpoints
 * only) or a ServiceImport (the clusterset, nearest first), on `port` (default: its only
 * port). None: the config has no such service or port.
 */
export function backendDestination(
  config: ProxyConfig,
  kind: 'Service' | 'ServiceImport',
  namespace: string,
  name: string,
  port: number | undefined,
): Destination | undefined {
  return memo(config, `backend ${kind} ${namespace}/${name}:${port}`, () => {
    const localOnly = kind === 'Service';
    const service = serviceNamed(config, namespace, name, localOnly);
    if (!service) return undefined;
    const chosen = port ?? (service.ports.length === 1 ? service.ports[0]!.port : undefined);
    if (chosen === undefined || !service.ports.some((p) => p.port === chosen)) return undefined;
    return { service, port: chosen, localOnly };
  });
}

const CLUSTERSET = '.svc.clusterset.local';
const CLUSTER_LOCAL = '.svc.cluster.local';

/**
 * The service an authority names: `<svc>.<ns>.svc.clusterset.local[:port]` (the clusterset,
 * nearest first), or a cluster-local form (`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>`, or
 * `<svc>` in the proxy's own namespace). The port defaults to the service's only port, else 80.
 */
export function resolveDestination(
  config: ProxyConfig,
  authority: string,
  ownNamespace: string,
): Destination | undefined {
  return memo(config, `destination ${ownNamespace} ${authority}`, () =>
    findDestination(config, authority, ownNamespace),
  );
}

function findDestination(
  config: ProxyConfig,
  authority: string,
  ownNamespace: string,
): Destination | undefined {
  const match = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(authority.trim().toLowerCase());
  if (!match) return undefined;
  let host = match[1]!.replace(/\.$/, '');
  let localOnly = true;
  if (host.endsWith(CLUSTERSET)) {
    host = host.slice(0, -CLUSTERSET.length);
    localOnly = false;
  } else if (host.endsWith(CLUSTER_LOCAL)) host = host.slice(0, -CLUSTER_LOCAL.length);
  const parts = host.split('.');
  if (parts.length > 2 || (!localOnly && parts.length !== 2)) return undefined;
  const [name, namespace = ownNamespace] = parts as [string, string?];
  const service = serviceNamed(config, namespace, name, localOnly);
  if (!service) return undefined;
  const port = match[2] ? Number(match[2]) : service.ports.length === 1 ? service.ports[0]!.port : 80;
  if (!service.ports.some((p) => p.port === port)) return undefined;
  return { service, port, localOnly };
}

/** What a route match reads from a request. */
export interface RequestFacts {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly grpc: boolean;
}

interface PathMatch {
  type?: string;
  value?: string;
}
export interface HeaderMatch {
  type?: string;
  name: string;
  value: string;
}
interface HttpMatch {
  path?: PathMatch;
  method?: string;
  headers?: HeaderMatch[];
}
interface GrpcMatch {
  method?: { type?: string; service?: string; method?: string };
  headers?: HeaderMatch[];
}

export function headersMatch(matches: readonly HeaderMatch[] | undefined, facts: RequestFacts): boolean {
  return (matches ?? []).every((m) => {
    const value = facts.headers[m.name.toLowerCase()];
    const text = Array.isArray(value) ? value.join(',') : value;
    if (text === undefined) return false;
    return m.type === 'RegularExpression' ? new RegExp(m.value).test(text) : text === m.value;
  });
}

function httpMatches(match: HttpMatch, facts: RequestFacts): boolean {
  const path = facts.path.split('?')[0]!;
  const want = match.path ?? { type: 'PathPrefix', value: '/' };
  const value = want.value ?? '/';
  if (want.type === 'Exact' && path !== value) return false;
  if (want.type === 'RegularExpression' && !new RegExp(`^(?:${value})$`).test(path)) return false;
  if ((want.type ?? 'PathPrefix') === 'PathPrefix') {
    const prefix = value.replace(/\/$/, '');
    if (prefix !== '' && path !== prefix && !path.startsWith(`${prefix}/`)) return false;
  }
  if (match.method && match.method !== facts.method) return false;
  return headersMatch(match.headers, facts);
}

function grpcMatches(match: GrpcMatch, facts: RequestFacts): boolean {
  const [, service = '', method = ''] = /^\/([^/]+)\/([^/]+)$/.exec(facts.path) ?? [];
  if (match.method?.service && match.method.service !== service) return false;
  if (match.method?.method && match.method.method !== method) return false;
  return headersMatch(match.headers, facts);
}

/** The backend service (and port) a request goes to, after the routes attached to its destination. */
export interface RoutedBackend {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  /** The route and rule that chose it, for logs. */
  readonly route?: string;
  /** That rule's `timeouts` (Gateway API durations). */
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
}

/**
 * Applies the mesh routes whose parent is the destination service (HTTPRoute for HTTP,
 * GRPCRoute for gRPC; the first matching rule of the oldest-named route wins, as the Gateway
 * API orders them) and picks a weighted backend. No route: the destination itself. A rule
 * whose chosen backend did not resolve answers 500, as the Gateway API asks.
 */
export function routeRequest(
  config: ProxyConfig,
  destination: Destination,
  facts: RequestFacts,
  random: () => number = Math.random,
): RoutedBackend | { readonly status: 404 | 500; readonly reason: string } {
  const { service } = destination;
  const kind = facts.grpc ? 'GRPCRoute' : 'HTTPRoute';
  const routes = memo(config, `routes ${kind} ${service.namespace}/${service.name}:${destination.port}`, () =>
    config.routes.filter(
      (route) =>
        route.kind === kind &&
        route.parents.some(
          (parent) =>
            parent.kind !== 'Gateway' &&
            parent.namespace === service.namespace &&
            parent.name === service.name &&
            (parent.port === undefined || parent.port === destination.port),
        ),
    ),
  );
  if (routes.length === 0)
    return { namespace: service.namespace, name: service.name, port: destination.port };
  for (const route of routes) {
    for (const [index, rule] of route.rules.entries()) {
      const matches = rule.matches as Array<HttpMatch & GrpcMatch>;
      const hit =
        matches.length === 0 ||
        matches.some((match) => (facts.grpc ? grpcMatches(match, facts) : httpMatches(match, facts)));
      if (!hit) continue;
      const backend = pickWeighted(rule.backends, random);
      const label = `${route.namespace}/${route.name}#${rule.name ?? index}`;
      if (!backend) return { status: 500, reason: `${label} has no backend with weight` };
      if (!backend.resolved)
        return { status: 500, reason: `${label}: backend ${backend.name} did not resolve` };
      return {
        namespace: backend.namespace,
        name: backend.name,
        port: backend.port ?? destination.port,
        route: label,
        ...(rule.timeouts ? { timeouts: rule.timeouts as RoutedBackend['timeouts'] } : {}),
      };
    }
  }
  return { status: 404, reason: `no rule of the routes on ${service.name}.${service.namespace} matches` };
}

/**
 * The destination a route chose: the destination itself (perhaps on another port), or the
 * backend Service, named the way the app named the destination (cluster-local or clusterset).
 */
export function routedDestination(
  config: ProxyConfig,
  destination: Destination,
  routed: RoutedBackend,
): Destination | undefined {
  const { service } = destination;
  if (routed.name === service.name && routed.namespace === service.namespace)
    return routed.port === destination.port ? destination : { ...destination, port: routed.port };
  return memo(
    config,
    `routed ${routed.namespace}/${routed.name}:${routed.port} ${destination.localOnly}`,
    () => {
      const backend = serviceNamed(config, routed.namespace, routed.name, destination.localOnly);
      return backend && { service: backend, port: routed.port, localOnly: destination.localOnly };
    },
  );
}

function pickWeighted<T extends { weight: number }>(
  items: readonly T[],
  random: () => number,
): T | undefined {
  const total = items.reduce((sum, item) => sum + item.weight, 0);
  if (total <= 0) return undefined;
  let draw = random() * total;
  for (const item of items) {
    draw -= item.weight;
    if (draw < 0) return item;
  }
  return items.at(-1);
}

/** The targets of a service port, nearest first; the lists are shared: never change them. */
export interface Targets {
  readonly local: readonly Target[];
  readonly remote: readonly Target[];
  /** Local, then remote. */
  readonly all: readonly Target[];
}

/**
 * Every place a request for a service port can go, nearest first: this cluster's ready
 * endpoints, then each other cluster through its east-west gateway (fresh clusters before
 * stale ones; withdrawn clusters are not in the config at all). A cluster-local name stops
 * at this cluster. A backend whose serving identities the catalog does not list yet is
 * left out: nothing could check who answers there.
 */
export function targetsFor(config: ProxyConfig, backend: RoutedBackend, localOnly: boolean): Targets {
  return memo(config, `targets ${backend.namespace}/${backend.name}:${backend.port} ${localOnly}`, () =>
    findTargets(config, backend, localOnly),
  );
}

function findTargets(config: ProxyConfig, backend: RoutedBackend, localOnly: boolean): Targets {
  const service = serviceNamed(config, backend.namespace, backend.name, localOnly);
  const servicePort = service?.ports.find((p) => p.port === backend.port);
  const local: Target[] = [];
  const fresh: Target[] = [];
  const stale: Target[] = [];
  if (!service || !servicePort) return { local, remote: [], all: local };
  const servername = serviceSni({ namespace: service.namespace, name: service.name, port: servicePort.port });
  for (const entry of service.backends) {
    if (entry.identities.length === 0) continue;
    if (entry.kind === 'local') {
      for (const endpoint of entry.endpoints) {
        if (!endpoint.ready) continue;
        const port = endpoint.ports.find((p) => p.name === (servicePort.name ?? ''));
        if (!port) continue;
        local.push({
          key: `local ${endpoint.address}:${port.port}`,
          cluster: entry.cluster,
          local: true,
          host: endpoint.address,
          port: port.port,
          identities: entry.identities,
        });
      }
    } else if (!localOnly && entry.readyEndpoints > 0) {
      for (const address of entry.gatewayAddresses) {
        const index = address.lastIndexOf(':');
        const target: Target = {
          key: `remote ${address} ${servername}`,
          cluster: entry.cluster,
          local: false,
          host: address.slice(0, index),
          port: Number(address.slice(index + 1)),
          servername,
          identities: entry.identities,
        };
        (entry.stale ? stale : fresh).push(target);
      }
    }
  }
  const remote = [...fresh, ...stale];
  return { local, remote, all: [...local, ...remote] };
}

/** The load balancer a TrafficPolicy names for a service (`RoundRobin`, `Random`; default least request). */
export function loadBalancerOf(config: ProxyConfig, namespace: string, name: string): string | undefined {
  return memo(
    config,
    `balancer ${namespace}/${name}`,
    () =>
      (
        trafficPolicyFor(config, namespace, name, undefined, 'loadBalancer')?.value as
          { type?: string } | undefined
      )?.type,
  );
}

/**
 * What a TrafficPolicy on a service says about its clusters (`clusterWeights`, `locality`);
 * none: nearest first, failing over to the others.
 */
export function clusterPreferenceOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
): ClusterPreference | undefined {
  return memo(config, `clusters ${namespace}/${name}`, () => {
    const weights = trafficPolicyFor(config, namespace, name, undefined, 'clusterWeights')?.value as
      Array<{ cluster: string; weight: number }> | undefined;
    const locality = trafficPolicyFor(config, namespace, name, undefined, 'locality')?.value as
      { failover?: boolean; clusterPriority?: string[] } | undefined;
    if (!weights?.length && !locality?.clusterPriority?.length && locality?.failover !== false)
      return undefined;
    return {
      ...(weights?.length ? { weights: new Map(weights.map((w) => [w.cluster, w.weight])) } : {}),
      ...(locality?.clusterPriority?.length ? { priority: locality.clusterPriority } : {}),
      failover: locality?.failover !== false,
    };
  });
}
