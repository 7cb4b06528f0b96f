import type { ConditionValue } from '@causeway/catalog';
import { attachRoute, type CompiledGateway } from './gateways.ts';

/** The name Causeway writes in route status (`status.parents[].controllerName`). */
export const CONTROLLER_NAME = 'causeway.dev/federation-controller';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const MCS_GROUP = 'multicluster.x-k8s.io';

export interface ParentReference {
  readonly group?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name: string;
  readonly port?: number;
  readonly sectionName?: string;
}

interface BackendReference {
  readonly group?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name: string;
  readonly port?: number;
  readonly weight?: number;
  readonly filters?: readonly unknown[];
}

/** The fields of an HTTPRoute or GRPCRoute that are compiled. */
export interface RouteView {
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  readonly metadata: {
    readonly namespace: string;
    readonly name: string;
    readonly generation?: number;
    readonly creationTimestamp?: string | Date;
  };
  readonly spec?: {
    readonly parentRefs?: readonly ParentReference[];
    readonly hostnames?: readonly string[];
    readonly rules?: ReadonlyArray<{
      readonly name?: string;
      readonly matches?: readonly unknown[];
      readonly filters?: readonly unknown[];
      readonly backendRefs?: readonly BackendReference[];
      readonly timeouts?: unknown;
    }>;
  };
}

/** What a parent or backend reference may point at. */
export type RefKind = 'Gateway' | 'Service' | 'ServiceImport';

/** One route as proxies get it: defaults filled in, references resolved. */
export interface CompiledRoute {
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  readonly namespace: string;
  readonly name: string;
  /** When the route was created (RFC 3339): older routes win ties between rules. */
  readonly created?: string;
  readonly hostnames: readonly string[];
  /** Accepted parents: Gateways (ingress) or Services/ServiceImports (mesh, GAMMA). */
  readonly parents: ReadonlyArray<{
    readonly kind: RefKind;
    readonly namespace: string;
    readonly name: string;
    readonly port?: number;
    readonly sectionName?: string;
    /** A Gateway parent: the names of its listeners the route attached to. */
    readonly listeners?: readonly string[];
  }>;
  readonly rules: ReadonlyArray<{
    readonly name?: string;
    readonly matches: readonly unknown[];
    readonly filters: readonly unknown[];
    readonly timeouts?: unknown;
    /** A backend that did not resolve keeps its weight share, so proxies answer 500 for it. */
    readonly backends: ReadonlyArray<{
      readonly kind: 'Service' | 'ServiceImport';
      readonly namespace: string;
      readonly name: string;
      readonly port?: number;
      readonly weight: number;
      readonly resolved: boolean;
      readonly filters: readonly unknown[];
    }>;
  }>;
}

/** Our entry in one parent's `status.parents`. */
export interface RouteParentStatus {
  readonly parentRef: ParentReference;
  readonly controllerName: string;
  readonly conditions: readonly ConditionValue[];
}

const kindOf = (
  group: string | undefined,
  kind: string | undefined,
  fallback: RefKind,
): RefKind | undefined => {
  const g = group ?? (fallback === 'Service' ? '' : GATEWAY_GROUP);
  const k = kind ?? fallback;
  if (g === GATEWAY_GROUP && k === 'Gateway') return 'Gateway';
  if (g === '' && k === 'Service') return 'Service';
  if (g === MCS_GROUP && k === 'ServiceImport') return 'ServiceImport';
  return undefined;
};

/** The fields of a ReferenceGrant that are read. */
export interface ReferenceGrantView {
  readonly metadata: { readonly namespace: string; readonly name: string };
  readonly spec?: {
    readonly from?: ReadonlyArray<{
      readonly group: string;
      readonly kind: string;
      readonly namespace: string;
    }>;
    readonly to?: ReadonlyArray<{ readonly group: string; readonly kind: string; readonly name?: string }>;
  };
}

/**
 * Whether a route may point at a backend in another namespace: some ReferenceGrant in the
 * backend's namespace lists the route's kind and namespace under `from`, and the backend's
 * kind (and name, when the grant names one) under `to`.
 */
export function referencePermitted(
  grants: readonly ReferenceGrantView[],
  from: { readonly kind: RouteView['kind'] | 'Gateway'; readonly namespace: string },
  to: { readonly group: string; readonly kind: string; readonly namespace: string; readonly name: string },
): boolean {
  return grants.some(
    (grant) =>
      grant.metadata.namespace === to.namespace &&
      (grant.spec?.from ?? []).some(
        (f) => f.group === GATEWAY_GROUP && f.kind === from.kind && f.namespace === from.namespace,
      ) &&
      (grant.spec?.to ?? []).some(
        (t) => t.group === to.group && t.kind === to.kind && (t.name === undefined || t.name === to.name),
      ),
  );
}

/**
 * Compiles routes for proxies and says, per parent, what the Gateway API status should
 * be: `Accepted` (the parent exists and is a kind Causeway serves) and `ResolvedRefs`
 * (every backend is a Service or ServiceImport that exists, in the route's namespace or in
 * a namespace whose ReferenceGrant allows it; otherwise `RefNotPermitted`).
 */
export function compileRoutes(
  routes: readonly RouteView[],
  exists: (kind: RefKind, namespace: string, name: string) => boolean,
  grants: readonly ReferenceGrantView[] = [],
  /**
   * The Gateways of Causeway's class (see `compileGateways`): a route attaches to their
   * listeners, and a parent Gateway of another class gets no status from Causeway. Without
   * them, every existing Gateway accepts every route.
   */
  gateways?: readonly CompiledGateway[],
): { routes: CompiledRoute[]; statuses: Map<string, RouteParentStatus[]> } {
  const compiled: CompiledRoute[] = [];
  const statuses = new Map<string, RouteParentStatus[]>();
  const sorted = [...routes].sort((a, b) =>
    `${a.kind}/${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
      `${b.kind}/${b.metadata.namespace}/${b.metadata.name}`,
    ),
  );
  for (const route of sorted) {
    const namespace = route.metadata.namespace;
    const problems: ConditionValue[] = [];
    const rules = (route.spec?.rules ?? [{}]).map((rule) => ({
      ...(rule.name ? { name: rule.name } : {}),
      matches: rule.matches ?? [],
      filters: rule.filters ?? [],
      ...(rule.timeouts ? { timeouts: rule.timeouts } : {}),
      backends: (rule.backendRefs ?? []).map((ref) => {
        const kind = kindOf(ref.group, ref.kind, 'Service');
        const target = ref.namespace ?? namespace;
        let resolved = true;
        if (kind !== 'Service' && kind !== 'ServiceImport') {
          resolved = false;
          problems.push({
            type: 'ResolvedRefs',
            status: 'False',
            reason: 'InvalidKind',
            message: `backendRef ${ref.group ?? ''}/${ref.kind ?? 'Service'} ${ref.name} is not a Service or ServiceImport`,
          });
        } else if (
          target !== namespace &&
          !referencePermitted(
            grants,
            { kind: route.kind, namespace },
            { group: kind === 'Service' ? '' : MCS_GROUP, kind, namespace: target, name: ref.name },
          )
        ) {
          resolved = false;
          problems.push({
            type: 'ResolvedRefs',
            status: 'False',
            reason: 'RefNotPermitted',
            message: `backendRef ${kind} ${target}/${ref.name} is in another namespace and no ReferenceGrant there allows ${route.kind}s from ${namespace}`,
          });
        } else if (!exists(kind, target, ref.name)) {
          resolved = false;
          problems.push({
            type: 'ResolvedRefs',
            status: 'False',
            reason: 'BackendNotFound',
            message: `${kind} ${target}/${ref.name} does not exist`,
          });
        }
        return {
          kind: (kind === 'ServiceImport' ? 'ServiceImport' : 'Service') as 'Service' | 'ServiceImport',
          namespace: target,
          name: ref.name,
          ...(ref.port !== undefined ? { port: ref.port } : {}),
          weight: ref.weight ?? 1,
          resolved,
          filters: ref.filters ?? [],
        };
      }),
    }));
    const resolvedRefs: ConditionValue = problems[0]
      ? { ...problems[0], message: problems.map((p) => p.message).join('; ') }
      : { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all references resolved' };
    const invalid = regexProblem(route);
    const parents: Array<CompiledRoute['parents'][number]> = [];
    const parentStatuses: RouteParentStatus[] = [];
    for (const ref of route.spec?.parentRefs ?? []) {
      const kind = kindOf(ref.group, ref.kind, 'Gateway');
      const target = ref.namespace ?? namespace;
      let accepted: ConditionValue;
      let listeners: string[] | undefined;
      const gateway =
        kind === 'Gateway' && gateways
          ? gateways.find((g) => g.namespace === target && g.name === ref.name)
          : undefined;
      // Another class's Gateway: its controller speaks for this parent, not Causeway.
      if (kind === 'Gateway' && gateways && !gateway && exists(kind, target, ref.name)) continue;
      const attached =
        gateway &&
        attachRoute(gateway, ref, { kind: route.kind, namespace, hostnames: route.spec?.hostnames ?? [] });
      if (invalid) {
        accepted = { type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: invalid };
      } else if (attached && 'refusal' in attached) {
        accepted = attached.refusal;
      } else if (!kind) {
        accepted = {
          type: 'Accepted',
          status: 'False',
          reason: 'UnsupportedValue',
          message: `parentRef ${ref.group ?? GATEWAY_GROUP}/${ref.kind ?? 'Gateway'} is not a Gateway, Service or ServiceImport`,
        };
      } else if (!exists(kind, target, ref.name)) {
        accepted = {
          type: 'Accepted',
          status: 'False',
          reason: 'NoMatchingParent',
          message: `${kind} ${target}/${ref.name} does not exist`,
        };
      } else {
        if (attached) listeners = attached.listeners;
        accepted = {
          type: 'Accepted',
          status: 'True',
          reason: 'Accepted',
          message: `accepted by ${kind} ${target}/${ref.name}`,
        };
        parents.push({
          kind,
          namespace: target,
          name: ref.name,
          ...(ref.port !== undefined ? { port: ref.port } : {}),
          ...(ref.sectionName ? { sectionName: ref.sectionName } : {}),
          ...(listeners ? { listeners } : {}),
        });
      }
      parentStatuses.push({
        parentRef: ref,
        controllerName: CONTROLLER_NAME,
        conditions: [accepted, resolvedRefs],
      });
    }
    statuses.set(`${route.kind}/${namespace}/${route.metadata.name}`, parentStatuses);
    if (parents.length > 0)
      compiled.push({
        kind: route.kind,
        namespace,
        name: route.metadata.name,
        // (A Date from an API client or a file source: sent on as RFC 3339 text.)
        ...(route.metadata.creationTimestamp &&
        !Number.isNaN(new Date(route.metadata.creationTimestamp).getTime())
          ? { created: new Date(route.metadata.creationTimestamp).toISOString() }
          : {}),
        hostnames: route.spec?.hostnames ?? [],
        parents,
        rules,
      });
  }
  return { routes: compiled, statuses };
}

/**
 * The first `RegularExpression` of a route's matches (paths, headers, query parameters,
 * gRPC services and methods) that is not one, described; none when all are. A route with
 * one is not accepted: proxies would never match that rule, and requests meant for it
 * would fall through to others.
 */
function regexProblem(route: RouteView): string | undefined {
  interface Value {
    type?: string;
    value?: string;
  }
  const check = (source: string | undefined, where: string): string | undefined => {
    if (source === undefined) return undefined;
    try {
      new RegExp(source);
      return undefined;
    } catch (error) {
      return `${where}: ${JSON.stringify(source)} is not a valid regular expression (${(error as Error).message})`;
    }
  };
  for (const [ruleIndex, rule] of (route.spec?.rules ?? []).entries())
    for (const [matchIndex, raw] of (rule.matches ?? []).entries()) {
      const match = raw as {
        path?: Value;
        headers?: Value[];
        queryParams?: Value[];
        method?: { type?: string; service?: string; method?: string } | string;
      };
      const at = `spec.rules[${ruleIndex}].matches[${matchIndex}]`;
      const problems = [
        match.path?.type === 'RegularExpression' ? check(match.path.value, `${at}.path.value`) : undefined,
        ...(match.headers ?? []).map((h, i) =>
          h.type === 'RegularExpression' ? check(h.value, `${at}.headers[${i}].value`) : undefined,
        ),
        ...(match.queryParams ?? []).map((q, i) =>
          q.type === 'RegularExpression' ? check(q.value, `${at}.queryParams[${i}].value`) : undefined,
        ),
        ...(typeof match.method === 'object' && match.method.type === 'RegularExpression'
          ? [
              check(match.method.service, `${at}.method.service`),
              check(match.method.method, `${at}.method.method`),
            ]
          : []),
      ];
      const problem = problems.find((p) => p !== undefined);
      if (problem) return problem;
    }
  return undefined;
}

/** A Causeway policy as proxies get it (validated by its CRD schema in the API server). */
export interface PolicyView {
  readonly kind: 'TrafficPolicy' | 'AuthorizationPolicy' | 'RateLimitPolicy';
  readonly namespace: string;
  readonly name: string;
  readonly spec: unknown;
}
