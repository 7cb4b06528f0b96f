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

/**
 * The order in which a request's (or a connection's) targets are tried: healthy local
 * endpoints (the balancer's pick first, the others after it in turn), then the other
 * clusters, then remote and local targets that failed lately, as a last resort.
 */
export function orderTargets(
  targets: Targets,
  /** TrafficPolicy `loadBalancer.type`: `RoundRobin`, `Random`, or least request (the default). */
  type: string | undefined,
  portKey: string,
  state: BalancerState,
  now: number,
): readonly Target[] {
  const { ejectedUntil } = state;
  // Nothing failed lately and no choice among local endpoints: the order is the config's.
  if (ejectedUntil.size === 0 && targets.local.length <= 1) return targets.all;
  const ejected = (target: Target) => (ejectedUntil.get(target.key) ?? 0) > now;
  const healthy = targets.local.filter((t) => !ejected(t));
  const random = state.random ?? Math.random;
  let first = 0;
  if (healthy.length > 1) {
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
  }
  const local = [...healthy.slice(first), ...healthy.slice(0, first)];
  const remote = targets.remote.filter((t) => !ejected(t));
  return [...local, ...remote, ...targets.remote.filter(ejected), ...targets.local.filter(ejected)];
}
