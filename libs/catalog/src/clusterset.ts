import type { PeerStatus } from './catalog-sync.ts';
import type { ExportRecord } from './records.ts';
import type { ExportedPort, ImportType, MergedService } from './types.ts';

/** One endpoint of a service in this cluster (from its EndpointSlices or a registration). */
export interface LocalEndpoint {
  readonly address: string;
  readonly ready: boolean;
  /** Target ports, matched to the service's ports by name. */
  readonly ports: ReadonlyArray<{ readonly name: string; readonly port: number; readonly protocol: string }>;
  readonly zone?: string;
}

/** Where a service is served: this cluster's own endpoints, or a remote cluster's gateway. */
export type Backend =
  | {
      readonly kind: 'local';
      readonly cluster: string;
      readonly endpoints: readonly LocalEndpoint[];
      readonly identities: readonly string[];
    }
  | {
      readonly kind: 'remote';
      readonly cluster: string;
      /** `host:port` of the remote east-west gateway(s). */
      readonly gatewayAddresses: readonly string[];
      readonly identities: readonly string[];
      readonly readyEndpoints: number;
      readonly locality?: { readonly region?: string; readonly zone?: string };
      /** The cluster's heartbeat is missing: kept (fail static), but flagged. */
      readonly stale: boolean;
    };

/** One service of the clusterset, with every backend that serves it, as proxies need it. */
export interface ClustersetService {
  readonly namespace: string;
  readonly name: string;
  /** `<name>.<namespace>.svc.clusterset.local` (`.svc.cluster.local` for scope `cluster`). */
  readonly hostname: string;
  /**
   * `cluster`: a Service of this cluster that the clusterset does not serve from here (not
   * exported): reachable by its cluster-local names only, never through a gateway.
   */
  readonly scope?: 'cluster';
  readonly type: ImportType;
  readonly ports: readonly ExportedPort[];
  readonly backends: readonly Backend[];
  /** Clusters left out because a staleness policy withdrew them. */
  readonly withdrawn: readonly string[];
}

/** Per service (`ns/name`), the clusters a staleness policy withdraws now. */
export type Withdrawals = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * Which silent clusters to withdraw: for each service with a `withdrawAfter` (ms), every
 * remote cluster whose heartbeat is older than that. This cluster is never withdrawn, and
 * nothing is withdrawn while this cluster's own heartbeat is stale (we are the silent one).
 */
export function withdrawals(
  policies: ReadonlyMap<string, number>,
  catalog: ReadonlyMap<string, MergedService>,
  peers: readonly PeerStatus[],
  self: string,
): Map<string, Set<string>> {
  const ages = new Map(peers.map((peer) => [peer.cluster, peer.ageSeconds * 1000]));
  const result = new Map<string, Set<string>>();
  // When our own heartbeat is not coming back through NATS, it is we who are cut off:
  // everyone looks silent, and nothing is withdrawn.
  const own = peers.find((peer) => peer.cluster === self);
  if (!own || own.stale) return result;
  for (const [key, withdrawAfter] of policies) {
    const service = catalog.get(key);
    if (!service) continue;
    const silent = service.clusters.filter(
      (cluster) => cluster !== self && (ages.get(cluster) ?? Infinity) > withdrawAfter,
    );
    if (silent.length > 0) result.set(key, new Set(silent));
  }
  return result;
}

/**
 * The clusterset as proxies see it: each merged service with the backends that serve it.
 * This cluster's backend carries its own endpoints; a remote cluster's backend is its
 * east-west gateway. Only clusters whose export backs the import appear, minus withdrawn
 * ones. Nothing from a remote record other than routing data is used.
 */
export function buildClusterset(input: {
  readonly cluster: string;
  readonly catalog: ReadonlyMap<string, MergedService>;
  readonly records: readonly ExportRecord[];
  readonly peers: readonly PeerStatus[];
  readonly withdrawn: Withdrawals;
  readonly localEndpoints: (namespace: string, name: string) => readonly LocalEndpoint[];
}): ClustersetService[] {
  const records = new Map(input.records.map((r) => [`${r.cluster}/${r.namespace}/${r.name}`, r]));
  const stale = new Set(input.peers.filter((peer) => peer.stale).map((peer) => peer.cluster));
  const services: ClustersetService[] = [];
  for (const key of [...input.catalog.keys()].sort()) {
    const service = input.catalog.get(key)!;
    const withdrawn = input.withdrawn.get(key) ?? new Set<string>();
    const backends: Backend[] = [];
    for (const cluster of service.clusters) {
      if (withdrawn.has(cluster)) continue;
      const record = records.get(`${cluster}/${key}`);
      if (!record) continue;
      if (cluster === input.cluster) {
        backends.push({
          kind: 'local',
          cluster,
          endpoints: input.localEndpoints(service.namespace, service.name),
          identities: record.identities,
        });
      } else {
        backends.push({
          kind: 'remote',
          cluster,
          gatewayAddresses: record.gatewayAddresses,
          identities: record.identities,
          readyEndpoints: record.readyEndpoints,
          ...(record.locality ? { locality: record.locality } : {}),
          stale: stale.has(cluster),
        });
      }
    }
    services.push({
      namespace: service.namespace,
      name: service.name,
      hostname: `${service.name}.${service.namespace}.svc.clusterset.local`,
      type: service.type,
      ports: service.ports,
      backends,
      withdrawn: [...withdrawn].sort(),
    });
  }
  return services;
}
