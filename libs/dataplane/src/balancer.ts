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
 * The clusters a cluster preference may send new traffic to now, in the order it would (a
 * weighted draw picks among them; otherwise the first is the one): with weights, those with
 * a weight and a healthy target (or, when none has one, a target at all); otherwise the
 * first cluster of the priority order (then nearest first) with a healthy target, or with a
 * target at all.
 */
function eligibleClusters(
  order: readonly string[],
  byCluster: ReadonlyMap<string, readonly Target[]>,
  preference: ClusterPreference,
  ejected: (target: Target) => boolean,
): string[] {
  const up = (cluster: string) => byCluster.get(cluster)!.some((t) => !ejected(t));
  if (preference.weights) {
    const weighted = order.filter((cluster) => (preference.weights!.get(cluster) ?? 0) > 0);
    const healthy = weighted.filter(up);
    return healthy.length > 0 ? healthy : weighted;
  }
  const first = order.find(up) ?? order[0];
  return first === undefined ? [] : [first];
}

/** The targets' clusters, nearest first (this one, fresh, stale), then as the priority says. */
function clustersOf(
  targets: Targets,
  preference: ClusterPreference,
): { order: string[]; byCluster: Map<string, Target[]> } {
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
  return { order, byCluster };
}

/** The clusters a cluster preference may send new traffic to now (see `eligibleClusters`). */
export function preferredClusters(
  targets: Targets,
  preference: ClusterPreference,
  ejected: (target: Target) => boolean,
): ReadonlySet<string> {
  const { order, byCluster } = clustersOf(targets, preference);
  return new Set(eligibleClusters(order, byCluster, preference, ejected));
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
  const { byCluster, order: nearest } = clustersOf(targets, preference);
  let order = nearest;
  const eligible = eligibleClusters(order, byCluster, preference, ejected);
  let chosen = eligible[0];
  if (preference.weights && eligible.length > 1) {
    // A draw by weight among them.
    const total = eligible.reduce((sum, cluster) => sum + preference.weights!.get(cluster)!, 0);
    let draw = (state.random ?? Math.random)() * total;
    chosen = eligible.find((cluster) => (draw -= preference.weights!.get(cluster)!) < 0) ?? eligible.at(-1);
  }
  if (chosen !== undefined) order = [chosen, ...order.filter((cluster) => cluster !== chosen)];
  // No weighted cluster has a target: nowhere to send it without failover.
  else if (!preference.failover) order = [];
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
