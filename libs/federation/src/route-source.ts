import {
  compileGateways,
  compileRoutes,
  CONTROLLER_NAME,
  type CompiledGateway,
  type CompiledRoute,
  type GatewayStatus,
  type GatewayView,
  type SecretView,
  type PolicyView,
  type ReferenceGrantView,
  type RefKind,
  type RouteParentStatus,
  type RouteView,
} from '@causeway/discovery';
import type { ConditionValue } from '@causeway/catalog';
import { trafficPolicyIssues, withTransitionTimes } from '@causeway/cluster';
import type { StateFile } from '@causeway/config';
import type { ClusterSource, SourceKind, SourceObject } from '@causeway/cluster';
import {
  compileTrafficPolicies,
  type CompiledTrafficPolicies,
  type LastValidSpec,
  type PolicyAncestorStatus,
  type TrafficPolicyObject,
  type TrafficPolicyVerdict,
} from './traffic-policies.ts';

const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute'] as const;

type RouteObject = SourceObject & {
  metadata: { generation?: number; uid?: string };
  status?: { parents?: Array<RouteParentStatus & { conditions: Array<{ lastTransitionTime: string }> }> };
};

/** The kinds whose changes mean the routes must be compiled again. */
export const ROUTE_INPUTS: ReadonlySet<SourceKind> = new Set([
  'HTTPRoute',
  'GRPCRoute',
  'Gateway',
  'ReferenceGrant',
  'AuthorizationPolicy',
  'RateLimitPolicy',
  'TrafficPolicy',
  'Secret',
]);

/**
 * The routing and policy view of one cluster: HTTPRoutes and GRPCRoutes (compiled for
 * proxies, with `Accepted`/`ResolvedRefs` written back to each parent's status), Gateways
 * (as route parents), ReferenceGrants (cross-namespace backends), and the Causeway policies
 * passed to proxies. Everything is read from the cluster source's caches.
 */
export class RouteSource {
  private readonly written = new Map<string, string>();
  private writing: Promise<void> = Promise.resolve();
  private compiled: CompiledRoute[] = [];
  private gateways: CompiledGateway[] = [];
  private trafficPolicies: CompiledTrafficPolicies = { policies: [], verdicts: [], lastValid: new Map() };
  /** Each TrafficPolicy's last valid spec, kept while the object lives (and saved, with a state file). */
  private lastValid: ReadonlyMap<string, LastValidSpec> = new Map();
  /** What was last saved of `lastValid` (JSON), so unchanged maps are not written again. */
  private savedLastValid = '[]';
  private statusEnabled = false;

  constructor(
    private readonly source: ClusterSource,
    private readonly options: {
      /** Whether a Service or ServiceImport exists (the controller's caches). */
      exists: (kind: 'Service' | 'ServiceImport', namespace: string, name: string) => boolean;
      onError: (error: unknown) => void;
      /** Where each TrafficPolicy's last valid spec is kept across restarts. */
      lastValidFile?: StateFile<Array<[string, LastValidSpec]>>;
    },
  ) {}

  /**
   * Reads the last valid specs a previous run saved (before the first compilation): a
   * policy that is invalid when the controller starts keeps its last valid spec in force.
   * An unreadable file is reported and ignored.
   */
  async restore(): Promise<void> {
    try {
      const saved = await this.options.lastValidFile?.read();
      if (!Array.isArray(saved)) return;
      // A spec that today's rules refuse (saved by an older controller) is not brought back.
      this.lastValid = new Map(saved.filter(([, kept]) => trafficPolicyIssues(kept.spec).length === 0));
      this.savedLastValid = JSON.stringify(saved);
    } catch (error) {
      this.options.onError(error);
    }
  }

  /** From now on, statuses are written (before, the caches may not be complete yet). */
  enableStatus(): void {
    this.statusEnabled = true;
  }

  /** Compiles the routes again and writes any status that changed (in the background). */
  recompile(): CompiledRoute[] {
    const views: RouteView[] = [];
    for (const kind of ROUTE_KINDS)
      for (const object of this.source.list(kind)) views.push({ ...(object as RouteView), kind });
    const gatewayObjects = this.source.list('Gateway') as readonly SourceObject[] as readonly GatewayView[];
    const grants = this.source.list(
      'ReferenceGrant',
    ) as readonly SourceObject[] as readonly ReferenceGrantView[];
    const compiledGateways = compileGateways(
      gatewayObjects,
      (namespace, name) => this.source.get('Secret', namespace, name) as SecretView | undefined,
      grants,
    );
    const { routes, statuses } = compileRoutes(
      views,
      (kind: RefKind, namespace, name) =>
        kind === 'Gateway'
          ? this.source.get('Gateway', namespace, name) !== undefined
          : this.options.exists(kind, namespace, name),
      grants,
      compiledGateways.gateways,
    );
    this.compiled = routes;
    this.gateways = compiledGateways.gateways;
    this.trafficPolicies = compileTrafficPolicies(
      this.source.list('TrafficPolicy') as readonly SourceObject[] as readonly TrafficPolicyObject[],
      (kind, namespace, name) =>
        kind === 'Service' || kind === 'ServiceImport'
          ? this.options.exists(kind, namespace, name)
          : (kind === 'HTTPRoute' || kind === 'GRPCRoute') &&
            this.source.get(kind, namespace, name) !== undefined,
      this.lastValid,
    );
    // Until the caches are complete, a policy not listed yet keeps what was restored for it.
    this.lastValid = this.statusEnabled
      ? this.trafficPolicies.lastValid
      : new Map([...this.lastValid, ...this.trafficPolicies.lastValid]);
    if (this.options.lastValidFile && this.statusEnabled) {
      const entries = [...this.lastValid];
      const text = JSON.stringify(entries);
      if (text !== this.savedLastValid) {
        // Marked saved once it is (a failed save is tried again at the next compilation).
        const file = this.options.lastValidFile;
        file.write(entries);
        file.flush().then(
          () => {
            if (JSON.stringify([...this.lastValid]) === text) this.savedLastValid = text;
          },
          (error: unknown) => this.options.onError(error),
        );
      }
    }
    if (!this.statusEnabled) return routes;
    this.writePolicyStatuses();
    this.writeGatewayStatuses(compiledGateways.statuses, routes);
    // A status is written again when its outcome changes, and for every new object or
    // generation (a recreated route, or a spec change with the same outcome).
    const versions = new Map(
      views.map((view) => {
        const meta = view.metadata as RouteView['metadata'] & { uid?: string };
        return [`${view.kind}/${meta.namespace}/${meta.name}`, `${meta.uid ?? ''}/${meta.generation ?? 0}`];
      }),
    );
    for (const [key, parents] of statuses) {
      const text = `${versions.get(key)} ${JSON.stringify(parents)}`;
      if (this.written.get(key) === text) continue;
      this.writing = this.writing
        .then(() => this.writeStatus(key, parents))
        .then(
          (done) => {
            if (done) this.written.set(key, text);
          },
          (error: unknown) => this.options.onError(error),
        );
    }
    for (const key of this.written.keys())
      if ((key.startsWith('HTTPRoute/') || key.startsWith('GRPCRoute/')) && !statuses.has(key))
        this.written.delete(key);
    return routes;
  }

  /** Waits for the last valid specs to be saved (a failed save throws). */
  async flush(): Promise<void> {
    await this.options.lastValidFile?.flush();
  }

  /** The last compiled routes. */
  current(): CompiledRoute[] {
    return this.compiled;
  }

  /** The Gateways of Causeway's class, as last compiled. */
  currentGateways(): CompiledGateway[] {
    return this.gateways;
  }

  /**
   * Writes each Gateway's status (conditions, and per listener its conditions and the
   * number of routes attached) where it changed, in the background.
   */
  private writeGatewayStatuses(
    statuses: ReadonlyMap<string, GatewayStatus>,
    routes: readonly CompiledRoute[],
  ): void {
    // Each route counts once per listener, however many of its parentRefs lead there.
    const attached = new Map<string, number>();
    for (const route of routes) {
      const keys = new Set(
        route.parents.flatMap((parent) =>
          (parent.listeners ?? []).map((listener) => `${parent.namespace}/${parent.name}/${listener}`),
        ),
      );
      for (const key of keys) attached.set(key, (attached.get(key) ?? 0) + 1);
    }
    for (const [id, status] of statuses) {
      const [namespace, name] = id.split('/') as [string, string];
      const full: GatewayStatus = {
        conditions: status.conditions,
        listeners: status.listeners.map((listener) => ({
          ...listener,
          attachedRoutes: attached.get(`${id}/${listener.name}`) ?? 0,
        })),
      };
      const meta = this.source.get('Gateway', namespace, name)?.metadata as
        { uid?: string; generation?: number } | undefined;
      const key = `Gateway/${id}`;
      const text = `${meta?.uid ?? ''}/${meta?.generation ?? 0} ${JSON.stringify(full)}`;
      if (this.written.get(key) === text) continue;
      this.writing = this.writing
        .then(() =>
          this.source.updateStatus('Gateway', namespace, name, (object) => {
            const current = object as SourceObject & {
              metadata: { generation?: number };
              status?: {
                conditions?: Array<{ type: string; status: string; lastTransitionTime: string }>;
                listeners?: Array<{
                  name: string;
                  conditions?: Array<{ type: string; status: string; lastTransitionTime: string }>;
                }>;
                addresses?: unknown;
              };
            };
            const generation = current.metadata.generation;
            const stamp = (next: readonly ConditionValue[], before: unknown) =>
              withTransitionTimes(
                next.map((c) => ({ ...c, observedGeneration: generation })),
                before as Parameters<typeof withTransitionTimes>[1],
              );
            return {
              ...(current.status?.addresses ? { addresses: current.status.addresses } : {}),
              conditions: stamp(full.conditions, current.status?.conditions),
              listeners: full.listeners.map((listener) => ({
                ...listener,
                conditions: stamp(
                  listener.conditions,
                  current.status?.listeners?.find((l) => l.name === listener.name)?.conditions,
                ),
              })),
            };
          }),
        )
        .then(
          (done) => {
            if (done) this.written.set(key, text);
          },
          (error: unknown) => this.options.onError(error),
        );
    }
    for (const key of this.written.keys())
      if (key.startsWith('Gateway/') && !statuses.has(key.slice('Gateway/'.length))) this.written.delete(key);
  }

  /** What each TrafficPolicy came to at the last compilation (for `causeway explain`). */
  trafficPolicyVerdicts(): readonly TrafficPolicyVerdict[] {
    return this.trafficPolicies.verdicts;
  }

  /**
   * Every Causeway policy of the cluster, for proxies: each TrafficPolicy's spec in force on
   * the targets it holds (see `compileTrafficPolicies`), the other kinds as they are.
   */
  policyViews(): PolicyView[] {
    const views: PolicyView[] = [...this.trafficPolicies.policies];
    const add = (
      kind: PolicyView['kind'],
      objects: ReadonlyArray<{ metadata: { namespace: string; name: string }; spec?: unknown }>,
    ) => {
      for (const object of objects)
        views.push({
          kind,
          namespace: object.metadata.namespace,
          name: object.metadata.name,
          spec: object.spec ?? {},
        });
    };
    for (const kind of ['AuthorizationPolicy', 'RateLimitPolicy'] as const) add(kind, this.source.list(kind));
    return views.sort((a, b) =>
      `${a.kind}/${a.namespace}/${a.name}`.localeCompare(`${b.kind}/${b.namespace}/${b.name}`),
    );
  }

  /** Writes each TrafficPolicy's `status.ancestors` that changed (in the background). */
  private writePolicyStatuses(): void {
    const objects = new Map(
      this.source
        .list('TrafficPolicy')
        .map((object) => [`${object.metadata.namespace}/${object.metadata.name}`, object as RouteObject]),
    );
    for (const verdict of this.trafficPolicies.verdicts) {
      const key = `TrafficPolicy/${verdict.namespace}/${verdict.name}`;
      const meta = objects.get(`${verdict.namespace}/${verdict.name}`)?.metadata;
      const text = `${meta?.uid ?? ''}/${meta?.generation ?? 0} ${JSON.stringify(verdict.ancestors)}`;
      if (this.written.get(key) === text) continue;
      this.writing = this.writing
        .then(() => this.writeAncestors(verdict.namespace, verdict.name, verdict.ancestors))
        .then(
          (done) => {
            if (done) this.written.set(key, text);
          },
          (error: unknown) => this.options.onError(error),
        );
    }
    for (const key of this.written.keys()) {
      const [kind, namespace, name] = key.split('/');
      if (kind === 'TrafficPolicy' && !objects.has(`${namespace}/${name}`)) this.written.delete(key);
    }
  }

  /** Replaces Causeway's entries in a TrafficPolicy's `status.ancestors`, keeping other controllers'. */
  private async writeAncestors(
    namespace: string,
    name: string,
    ancestors: readonly PolicyAncestorStatus[],
  ): Promise<boolean> {
    return this.source.updateStatus('TrafficPolicy', namespace, name, (object) => {
      const current = object as SourceObject & {
        metadata: { generation?: number };
        status?: {
          ancestors?: Array<PolicyAncestorStatus & { conditions: Array<{ lastTransitionTime: string }> }>;
        };
      };
      const previous = current.status?.ancestors ?? [];
      const ours = ancestors.map((ancestor) => {
        const before = previous.find(
          (p) =>
            p.controllerName === CONTROLLER_NAME &&
            JSON.stringify(p.ancestorRef) === JSON.stringify(ancestor.ancestorRef),
        );
        return {
          ancestorRef: ancestor.ancestorRef,
          controllerName: CONTROLLER_NAME,
          conditions: withTransitionTimes(
            ancestor.conditions.map((c) => ({ ...c, observedGeneration: current.metadata.generation })),
            before?.conditions as Parameters<typeof withTransitionTimes>[1],
          ),
        };
      });
      return { ancestors: [...previous.filter((p) => p.controllerName !== CONTROLLER_NAME), ...ours] };
    });
  }

  /**
   * Replaces Causeway's entries in `status.parents`, keeping other controllers' entries.
   * True once written (or the route is gone); false after repeated conflicts (retried later).
   */
  private async writeStatus(key: string, parents: readonly RouteParentStatus[]): Promise<boolean> {
    const [kind, namespace, name] = key.split('/') as [(typeof ROUTE_KINDS)[number], string, string];
    return this.source.updateStatus(kind, namespace, name, (object) => {
      const current = object as RouteObject;
      const previous = current.status?.parents ?? [];
      const ours = parents.map((parent) => {
        const before = previous.find(
          (p) =>
            p.controllerName === CONTROLLER_NAME &&
            JSON.stringify(p.parentRef) === JSON.stringify(parent.parentRef),
        );
        return {
          parentRef: parent.parentRef,
          controllerName: CONTROLLER_NAME,
          conditions: withTransitionTimes(
            parent.conditions.map((c) => ({ ...c, observedGeneration: current.metadata.generation })),
            before?.conditions as Parameters<typeof withTransitionTimes>[1],
          ),
        };
      });
      return { parents: [...previous.filter((p) => p.controllerName !== CONTROLLER_NAME), ...ours] };
    });
  }
}
