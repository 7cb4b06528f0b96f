import type { ProxyConfig } from '@causeway/discovery';

/** Who is calling and what they ask, as the inbound side knows it after mTLS. */
export interface CallFacts {
  /** The caller's SPIFFE ID (`spiffe://<td>/ns/<ns>/sa/<sa>`). */
  readonly principal: string;
  readonly namespace: string | undefined;
  /** The cluster whose intermediate issued the caller's certificate. */
  readonly cluster: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

interface Source {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  clusters?: string[];
  notClusters?: string[];
}
interface Operation {
  paths?: string[];
  notPaths?: string[];
  methods?: string[];
  notMethods?: string[];
}
interface Condition {
  header: string;
  values?: string[];
  notValues?: string[];
}
interface Rule {
  from?: Source[];
  to?: Operation[];
  when?: Condition[];
}
interface AuthorizationSpec {
  targetRefs?: Array<{ group?: string; kind?: string; name?: string }>;
  action?: 'ALLOW' | 'DENY';
  rules?: Rule[];
}

/** The outcome for one request, with the policy that decided it. */
export type Decision =
  | { readonly allowed: true; readonly policy?: string }
  | { readonly allowed: false; readonly policy: string; readonly reason: string };

/**
 * Istio-style value match: exact, `prefix*`, `*suffix`, or `*` (present). Principals match
 * the full SPIFFE ID or the form without `spiffe://` (`<td>/ns/<ns>/sa/<sa>`).
 */
function valueMatches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return value === pattern;
}

const anyOf = (patterns: readonly string[] | undefined, value: string | undefined): boolean | undefined =>
  patterns === undefined ? undefined : patterns.some((p) => valueMatches(p, value));

/** A field with both a positive and a negative list: both must hold when present. */
function field(
  positive: readonly string[] | undefined,
  negative: readonly string[] | undefined,
  values: readonly (string | undefined)[],
): boolean {
  if (positive && !values.some((value) => anyOf(positive, value))) return false;
  if (negative && values.some((value) => anyOf(negative, value))) return false;
  return true;
}

function sourceMatches(source: Source, facts: CallFacts): boolean {
  const principals = [facts.principal, facts.principal.replace(/^spiffe:\/\//, '')];
  return (
    field(source.principals, source.notPrincipals, principals) &&
    field(source.namespaces, source.notNamespaces, [facts.namespace]) &&
    field(source.clusters, source.notClusters, [facts.cluster])
  );
}

/**
 * Paths are case-sensitive (RFC 3986), but many apps route `/ADMIN` to `/admin`. So each
 * path list is compared in the way that refuses more: a DENY's `paths` and an ALLOW's
 * `notPaths` ignore case (`/ADMIN` is denied, or not allowed, like `/admin`); a DENY's
 * `notPaths` and an ALLOW's `paths` match exactly (`/PUBLIC` is not exempt like `/public`).
 */
function operationMatches(operation: Operation, facts: CallFacts, action: 'ALLOW' | 'DENY'): boolean {
  const path = facts.path.split('?')[0]!;
  const lower = path.toLowerCase();
  const lowered = (patterns: string[] | undefined) => patterns?.map((p) => p.toLowerCase());
  const paths =
    action === 'DENY'
      ? field(lowered(operation.paths), undefined, [lower]) && field(undefined, operation.notPaths, [path])
      : field(operation.paths, undefined, [path]) && field(undefined, lowered(operation.notPaths), [lower]);
  return paths && field(operation.methods, operation.notMethods, [facts.method]);
}

function conditionMatches(condition: Condition, facts: CallFacts): boolean {
  const raw = facts.headers[condition.header.toLowerCase()];
  const values = raw === undefined ? [undefined] : Array.isArray(raw) ? raw : [raw];
  return field(condition.values, condition.notValues, values);
}

/** A rule matches when some source, some operation and every condition match (absent: any). */
function ruleMatches(rule: Rule, facts: CallFacts, action: 'ALLOW' | 'DENY'): boolean {
  return (
    (rule.from === undefined || rule.from.some((source) => sourceMatches(source, facts))) &&
    (rule.to === undefined || rule.to.some((operation) => operationMatches(operation, facts, action))) &&
    (rule.when ?? []).every((condition) => conditionMatches(condition, facts))
  );
}

/** The AuthorizationPolicies of a namespace that target one of the given Services. */
export function policiesFor(
  config: ProxyConfig,
  namespace: string,
  services: readonly string[],
): Array<{ name: string; spec: AuthorizationSpec }> {
  return config.policies
    .filter((policy) => policy.kind === 'AuthorizationPolicy' && policy.namespace === namespace)
    .map((policy) => ({ name: `${policy.namespace}/${policy.name}`, spec: policy.spec as AuthorizationSpec }))
    .filter(({ spec }) =>
      (spec.targetRefs ?? []).some(
        (ref) =>
          (ref.group ?? '') === '' &&
          (ref.kind ?? 'Service') === 'Service' &&
          services.includes(ref.name ?? ''),
      ),
    );
}

/**
 * DENY first: any matching DENY policy refuses. Then ALLOW: with any ALLOW policy present,
 * a request that none of them matches is refused. Without policies, everything authenticated
 * is allowed. A policy without rules matches nothing (an ALLOW without rules thus allows
 * nothing); `rules: [{}]` matches everything.
 */
export function authorize(
  policies: ReadonlyArray<{ name: string; spec: AuthorizationSpec }>,
  facts: CallFacts,
): Decision {
  for (const policy of policies) {
    if (policy.spec.action !== 'DENY') continue;
    if ((policy.spec.rules ?? []).some((rule) => ruleMatches(rule, facts, 'DENY')))
      return { allowed: false, policy: policy.name, reason: 'denied by a DENY policy' };
  }
  const allows = policies.filter((policy) => (policy.spec.action ?? 'ALLOW') === 'ALLOW');
  if (allows.length === 0) return { allowed: true };
  for (const policy of allows)
    if ((policy.spec.rules ?? []).some((rule) => ruleMatches(rule, facts, 'ALLOW')))
      return { allowed: true, policy: policy.name };
  return {
    allowed: false,
    policy: allows.map((policy) => policy.name).join(','),
    reason: 'no ALLOW policy matches',
  };
}
