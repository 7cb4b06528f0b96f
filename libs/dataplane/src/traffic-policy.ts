import type { ProxyConfig } from '@causeway/discovery';
import { parseDuration } from '@causeway/config';

/** The longest limit a timer can keep (about 24.8 days). */
export const MAX_LIMIT_MS = 2_147_483_647;

/**
 * A policy's duration in ms; none when unset, `0s`, not a duration, or longer than a timer
 * holds (for a limit, all of these mean no limit).
 */
export function policyDurationMs(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const ms = parseDuration(text);
    return ms <= MAX_LIMIT_MS ? ms : undefined;
  } catch {
    return undefined;
  }
}

type PolicySpec = { targetRefs?: Array<{ kind?: string; name?: string }> } & Record<string, unknown>;

/**
 * The TrafficPolicy whose `field` applies to a request to `namespace/name` that `route`
 * (`namespace/name#rule`, if a mesh route matched) chose: one on the route wins over one on
 * the Service or ServiceImport. The controller has settled conflicts already: at most one
 * policy holds each target.
 */
export function trafficPolicyFor(
  config: ProxyConfig,
  namespace: string,
  name: string,
  route: string | undefined,
  field: string,
): { readonly policy: string; readonly value: unknown } | undefined {
  const [routeNamespace, routeName] = route ? route.split('#')[0]!.split('/') : [];
  const on = (kinds: readonly string[], ns: string | undefined, target: string | undefined) =>
    config.policies.find(
      (p) =>
        p.kind === 'TrafficPolicy' &&
        p.namespace === ns &&
        (p.spec as PolicySpec)[field] !== undefined &&
        ((p.spec as PolicySpec).targetRefs ?? []).some(
          (ref) => ref.name === target && kinds.includes(ref.kind ?? ''),
        ),
    );
  const policy =
    (route ? on(['HTTPRoute', 'GRPCRoute'], routeNamespace, routeName) : undefined) ??
    on(['Service', 'ServiceImport'], namespace, name);
  return (
    policy && { policy: `${policy.namespace}/${policy.name}`, value: (policy.spec as PolicySpec)[field] }
  );
}
