import type { ProxyConfig } from './snapshot.ts';

/**
 * How a sidecar carries a destination service port. `L4`: each app connection is one
 * HTTP/2 CONNECT stream (HBONE) over a pooled mTLS session, authorized by identity.
 * `L7`: each request is routed, authorized and forwarded on its own.
 */
export type DataPlaneMode = 'L4' | 'L7';

/** A service port's mode and, for L7, what needs it. */
export interface ModeDecision {
  readonly mode: DataPlaneMode;
  /** One line each: the routes and policies that need HTTP (empty for L4). */
  readonly reasons: readonly string[];
}

/** TrafficPolicy fields a connection-level proxy applies; any other field needs L7. */
const L4_TRAFFIC_FIELDS = new Set(['targetRefs', 'loadBalancer']);

interface AuthorizationRuleView {
  readonly to?: readonly unknown[];
  readonly when?: readonly unknown[];
}

/** Whether a policy in `policyNamespace` attaches to the Service (or ServiceImport) `namespace/name`. */
function targets(spec: unknown, namespace: string, name: string, policyNamespace: string): boolean {
  if (policyNamespace !== namespace) return false;
  const refs = (spec as { targetRefs?: Array<{ kind?: string; name?: string }> } | null)?.targetRefs ?? [];
  return refs.some((ref) => ref.name === name && (ref.kind ?? 'Service') !== 'Gateway');
}

/**
 * L4 unless something needs HTTP: a mesh route (HTTPRoute/GRPCRoute) attached to the
 * service (and port), an AuthorizationPolicy on it that matches paths, methods or headers,
 * or a TrafficPolicy on it with request-level settings. Identity-only authorization
 * (principals, namespaces, clusters) and load balancing work per connection.
 */
export function dataPlaneMode(
  config: Pick<ProxyConfig, 'routes' | 'policies'>,
  namespace: string,
  name: string,
  port: number,
): ModeDecision {
  const reasons: string[] = [];
  for (const route of config.routes) {
    const attached = route.parents.some(
      (parent) =>
        parent.kind !== 'Gateway' &&
        parent.namespace === namespace &&
        parent.name === name &&
        (parent.port === undefined || parent.port === port),
    );
    if (attached) reasons.push(`${route.kind} ${route.namespace}/${route.name} routes its requests`);
  }
  for (const policy of config.policies) {
    if (!targets(policy.spec, namespace, name, policy.namespace)) continue;
    if (policy.kind === 'AuthorizationPolicy') {
      const rules = ((policy.spec as { rules?: AuthorizationRuleView[] } | null)?.rules ??
        []) as AuthorizationRuleView[];
      if (rules.some((rule) => (rule.to?.length ?? 0) > 0 || (rule.when?.length ?? 0) > 0))
        reasons.push(
          `AuthorizationPolicy ${policy.namespace}/${policy.name} matches paths, methods or headers`,
        );
    } else if (policy.kind === 'TrafficPolicy') {
      const fields = Object.keys((policy.spec as object | null) ?? {}).filter(
        (key) => !L4_TRAFFIC_FIELDS.has(key),
      );
      if (fields.length > 0)
        reasons.push(`TrafficPolicy ${policy.namespace}/${policy.name} sets ${fields.join(', ')}`);
    } else if (policy.kind === 'RateLimitPolicy') {
      reasons.push(`RateLimitPolicy ${policy.namespace}/${policy.name} limits its requests`);
    }
  }
  return { mode: reasons.length > 0 ? 'L7' : 'L4', reasons };
}
