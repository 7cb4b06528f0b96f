import type { Target, Targets } from './routing.ts';

/** What the balancer needs to know besides the targets; the caller owns the state. */
export interface BalancerState {
  /** Until when (epoch ms) each target key is ejected (it failed lately). */
  readonly ejectedUntil: ReadonlyMap<string, number>;
  /** Round-robin positions per service port key; advanced by `orderTargets`. */
  readonly roundRobin: Map<string, number>;
  /** Requests or connections in flight per target key (least request). */
  readonly active: (key: string) => number;
  /** [0, 1): injected so that tests can be exact. */
  readonly random?: () => number;
}

/** A TrafficPolicy's say in which cluster serves: `clusterWeights` and `locality`. */
export interface ClusterPreference {
  /** Weight per cluster: each request (L4: connection) goes to one, drawn by weight; unlisted: 0. */
  readonly weights?: ReadonlyMap<string, number>;
  /** Clusters to try in this order (unlisted ones after them, nearest first). */
  readonly priority?: readonly string[];
  /** false: the first cluster only, no failover to others. */
  readonly failover: boolean;
}

/**
 * The order in which a request's (or a connection's) targets are tried: healthy local
 * endpoints (the balancer's pick first, the others after it in turn), then the other
 * clusters, then remote and local targets that failed lately, as a last resort. A cluster
 * preference orders whole clusters first: a weighted draw, then the priority list.
 */
export function orderTargets(
  targets: Targets,
  /** TrafficPolicy `loadBalancer.type`: `RoundRobin`, `Random`, or least request (the default). */
  type: string | undefined,
  portKey: string,
  state: BalancerState,
  now: number,
  clusters?: ClusterPreference,
): readonly Target[] {
  const { ejectedUntil } = state;
  if (clusters) return orderByCluster(targets, type, portKey, state, now, clusters);
  // Nothing failed lately and no choice among local endpoints: the order is the config's.
  if (ejectedUntil.size === 0 && targets.local.length <= 1) return targets.all;
  const ejected = (target: Target) => (ejectedUntil.get(target.key) ?? 0) > now;
  const local = pickFirst(
    targets.local.filter((t) => !ejected(t)),
    type,
    portKey,
    state,
  );
  const remote = targets.remote.filter((t) => !ejected(t));
  return [...local, ...remote, ...targets.remote.filter(ejected), ...targets.local.filter(ejected)];
}

/** `healthy` turned so that the balancer's pick comes first (the others after it in turn). */
function pickFirst(
  healthy: readonly Target[],
  type: string | undefined,
  portKey: string,
  state: BalancerState,
): readonly Target[] {
  if (healthy.length <= 1) return healthy;
  const random = state.random ?? Math.random;
  let first: number;
  if (type === 'RoundRobin') {
    first = (state.roundRobin.get(portKey) ?? 0) % healthy.length;
    state.roundRobin.set(portKey, first + 1);
  } else if (type === 'Random') {
    first = Math.floor(random() * healthy.length);
  } else {
    // Least request, power of two choices.
    const a = Math.floor(random() * healthy.length);
    const b = (a + 1 + Math.floor(random() * (healthy.length - 1))) % healthy.length;
    first = state.active(healthy[a]!.key) <= state.active(healthy[b]!.key) ? a : b;
  }
  return [...healthy.slice(first), ...healthy.slice(0, first)];
}

/**
 * The clusters a cluster preference may send new traffic to now: those with a weight (and a
 * healthy target), or else the first cluster of the priority order with a healthy target.
 */
export function preferredClusters(
  targets: Targets,
  preference: ClusterPreference,
  ejected: (target: Target) => boolean,
): ReadonlySet<string> {
  const up = targets.all.filter((target) => !ejected(target));
  if (preference.weights)
    return new Set(up.map((t) => t.cluster).filter((cluster) => (preference.weights!.get(cluster) ?? 0) > 0));
  const priority = preference.priority ?? [];
  const listed = priority.find((cluster) => up.some((t) => t.cluster === cluster));
  const first = listed ?? up[0]?.cluster;
  return new Set(first === undefined ? [] : [first]);
}

/** `orderTargets` under a cluster preference: cluster by cluster, the ejected ones last. */
function orderByCluster(
  targets: Targets,
  type: string | undefined,
  portKey: string,
  state: BalancerState,
  now: number,
  preference: ClusterPreference,
): readonly Target[] {
  const ejected = (target: Target) => (state.ejectedUntil.get(target.key) ?? 0) > now;
  // The clusters nearest first (this one, then fresh, then stale), then as the priority says.
  const byCluster = new Map<string, Target[]>();
  for (const target of targets.all) {
    let list = byCluster.get(target.cluster);
    if (!list) byCluster.set(target.cluster, (list = []));
    list.push(target);
  }
  let order = [...byCluster.keys()];
  if (preference.priority) {
    const rank = (cluster: string) => {
      const at = preference.priority!.indexOf(cluster);
      return at < 0 ? preference.priority!.length : at;
    };
    order = order
      .map((cluster, index) => ({ cluster, index }))
      .sort((a, b) => rank(a.cluster) - rank(b.cluster) || a.index - b.index)
      .map((entry) => entry.cluster);
  }
  if (preference.weights) {
    // A draw among the weighted clusters that have a healthy target now.
    const open = order.filter(
      (cluster) =>
        (preference.weights!.get(cluster) ?? 0) > 0 && byCluster.get(cluster)!.some((t) => !ejected(t)),
    );
    const total = open.reduce((sum, cluster) => sum + preference.weights!.get(cluster)!, 0);
    let draw = (state.random ?? Math.random)() * total;
    const chosen = open.find((cluster) => (draw -= preference.weights!.get(cluster)!) < 0) ?? open.at(-1);
    if (chosen) order = [chosen, ...order.filter((cluster) => cluster !== chosen)];
  }
  if (!preference.failover) order = order.slice(0, 1);
  const healthy: Target[] = [];
  const last: Target[] = [];
  for (const cluster of order) {
    const list = byCluster.get(cluster)!;
    const up = list.filter((t) => !ejected(t));
    healthy.push(...(list[0]!.local ? pickFirst(up, type, portKey, state) : up));
    last.push(...list.filter(ejected));
  }
  return [...healthy, ...last];
}
