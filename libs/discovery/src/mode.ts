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

/**
 * TrafficPolicy fields a connection-level proxy applies whole (`true`), or the parts of a
 * field it applies (a set); any other field, or part, needs L7.
 */
const L4_TRAFFIC_FIELDS: ReadonlyMap<string, true | ReadonlySet<string>> = new Map<
  string,
  true | ReadonlySet<string>
>([
  ['targetRefs', true],
  ['loadBalancer', true],
  ['clusterWeights', true],
  ['locality', true],
  ['staleness', true],
  ['timeouts', new Set(['connect', 'idle'])],
  ['circuitBreaker', new Set(['maxConnections'])],
  [
    'outlierDetection',
    new Set([
      'consecutiveLocalOriginFailures',
      'interval',
      'baseEjectionTime',
      'maxEjectionTime',
      'maxEjectionPercent',
    ]),
  ],
]);

/** The TrafficPolicy settings (`field` or `field.part`) that need L7. */
function l7TrafficFields(spec: unknown): string[] {
  const fields: string[] = [];
  for (const [key, value] of Object.entries((spec as Record<string, unknown> | null) ?? {})) {
    const l4 = L4_TRAFFIC_FIELDS.get(key);
    if (l4 === true) continue;
    if (l4 && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const part of Object.keys(value)) if (!l4.has(part)) fields.push(`${key}.${part}`);
      // Outlier detection that names no counter counts 5xx answers too (its default).
      if (key === 'outlierDetection' && !Object.keys(value).some((part) => part.startsWith('consecutive')))
        fields.push('outlierDetection (consecutive5xxErrors by default)');
    } else fields.push(key);
  }
  return fields;
}

interface AuthorizationRuleView {
  readonly to?: readonly unknown[];
  readonly when?: readonly unknown[];
}

/** Whether a policy in `policyNamespace` attaches to the Service (or ServiceImport) `namespace/name`. */
function targets(spec: unknown, namespace: string, name: string, policyNamespace: string): boolean {
  if (policyNamespace !== namespace) return false;
  const refs = (spec as { targetRefs?: Array<{ kind?: string; name?: string }> } | null)?.targetRefs ?? [];
  // A route, or a Gateway, of the same name is another object: it says nothing about the Service.
  return refs.some(
    (ref) =>
      ref.name === name && (ref.kind === undefined || ref.kind === 'Service' || ref.kind === 'ServiceImport'),
  );
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
      const fields = l7TrafficFields(policy.spec);
      if (fields.length > 0)
        reasons.push(`TrafficPolicy ${policy.namespace}/${policy.name} sets ${fields.join(', ')}`);
    } else if (policy.kind === 'RateLimitPolicy') {
      reasons.push(`RateLimitPolicy ${policy.namespace}/${policy.name} limits its requests`);
    }
  }
  return { mode: reasons.length > 0 ? 'L7' : 'L4', reasons };
}
