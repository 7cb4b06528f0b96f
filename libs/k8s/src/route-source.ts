import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import {
  compileRoutes,
  CONTROLLER_NAME,
  type CompiledRoute,
  type PolicyView,
  type RefKind,
  type RouteParentStatus,
  type RouteView,
} from '@causeway/discovery';
import { GATEWAY_GROUP, POLICY_GROUP } from './crds/index.ts';
import { withTransitionTimes } from './import-writer.ts';
import { ResourceWatch } from './resource-watch.ts';

const ROUTE_KINDS = {
  HTTPRoute: { group: GATEWAY_GROUP, version: 'v1', plural: 'httproutes' },
  GRPCRoute: { group: GATEWAY_GROUP, version: 'v1', plural: 'grpcroutes' },
} as const;
const GATEWAYS = { group: GATEWAY_GROUP, version: 'v1', plural: 'gateways' } as const;
const POLICY_KINDS = {
  AuthorizationPolicy: { group: POLICY_GROUP, version: 'v1alpha1', plural: 'authorizationpolicies' },
  RateLimitPolicy: { group: POLICY_GROUP, version: 'v1alpha1', plural: 'ratelimitpolicies' },
} as const;

type ApiObject = KubernetesObject & {
  metadata: { namespace: string; name: string; generation?: number };
  spec?: unknown;
  status?: { parents?: Array<RouteParentStatus & { conditions: Array<{ lastTransitionTime: string }> }> };
};

/**
 * The routing and policy sources of one cluster: HTTPRoutes and GRPCRoutes (compiled for
 * proxies, with `Accepted`/`ResolvedRefs` written back to each parent's status), Gateways
 * (as route parents), and AuthorizationPolicies and RateLimitPolicies (passed to proxies).
 * TrafficPolicies come from the staleness source, which already watches them.
 */
export class RouteSource {
  private readonly routes: Array<ResourceWatch<ApiObject>>;
  private readonly gateways: ResourceWatch<ApiObject>;
  private readonly policies: Array<ResourceWatch<ApiObject>>;
  private readonly custom: CustomObjectsApi;
  private readonly written = new Map<string, string>();
  private writing: Promise<void> = Promise.resolve();
  private compiled: CompiledRoute[] = [];

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: {
      /** Whether a Service or ServiceImport exists (the controller's caches). */
      exists: (kind: 'Service' | 'ServiceImport', namespace: string, name: string) => boolean;
      trafficPolicies: () => ReadonlyArray<{ metadata: { namespace: string; name: string }; spec?: unknown }>;
      onChange: () => void;
      onError: (error: unknown) => void;
    },
  ) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const watch = (kind: { group: string; version: string; plural: string }) =>
      new ResourceWatch<ApiObject>(kubeConfig, kind, () => options.onChange(), options.onError);
    this.routes = Object.values(ROUTE_KINDS).map(watch);
    this.gateways = watch(GATEWAYS);
    this.policies = Object.values(POLICY_KINDS).map(watch);
  }

  async start(): Promise<void> {
    for (const watch of [...this.routes, this.gateways, ...this.policies]) await watch.start();
  }

  stop(): void {
    for (const watch of [...this.routes, this.gateways, ...this.policies]) watch.stop();
  }

  /** Compiles the routes again and writes any status that changed (in the background). */
  recompile(): CompiledRoute[] {
    const views: RouteView[] = [];
    for (const [index, kind] of (['HTTPRoute', 'GRPCRoute'] as const).entries())
      for (const object of this.routes[index]!.list()) views.push({ ...(object as RouteView), kind });
    const gateways = new Set(this.gateways.list().map((g) => `${g.metadata.namespace}/${g.metadata.name}`));
    const { routes, statuses } = compileRoutes(views, (kind: RefKind, namespace, name) =>
      kind === 'Gateway' ? gateways.has(`${namespace}/${name}`) : this.options.exists(kind, namespace, name),
    );
    this.compiled = routes;
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
    for (const key of this.written.keys()) if (!statuses.has(key)) this.written.delete(key);
    return routes;
  }

  /** The last compiled routes. */
  current(): CompiledRoute[] {
    return this.compiled;
  }

  /** Every Causeway policy of the cluster, for proxies. */
  policyViews(): PolicyView[] {
    const views: PolicyView[] = [];
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
    add('TrafficPolicy', this.options.trafficPolicies());
    add('AuthorizationPolicy', this.policies[0]!.list());
    add('RateLimitPolicy', this.policies[1]!.list());
    return views.sort((a, b) =>
      `${a.kind}/${a.namespace}/${a.name}`.localeCompare(`${b.kind}/${b.namespace}/${b.name}`),
    );
  }

  /** Replaces Causeway's entries in `status.parents`, keeping other controllers' entries. */
  /** True once written (or the route is gone); false after repeated conflicts (retried later). */
  private async writeStatus(key: string, parents: readonly RouteParentStatus[]): Promise<boolean> {
    const [kind, namespace, name] = key.split('/') as [keyof typeof ROUTE_KINDS, string, string];
    const api = ROUTE_KINDS[kind];
    for (let attempt = 0; attempt < 3; attempt++) {
      let current: ApiObject;
      try {
        current = (await this.custom.getNamespacedCustomObject({ ...api, namespace, name })) as ApiObject;
      } catch (error) {
        if ((error as { code?: number }).code === 404) return true;
        throw error;
      }
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
      const body = {
        ...current,
        status: { parents: [...previous.filter((p) => p.controllerName !== CONTROLLER_NAME), ...ours] },
      };
      try {
        await this.custom.replaceNamespacedCustomObjectStatus({ ...api, namespace, name, body });
        return true;
      } catch (error) {
        if ((error as { code?: number }).code !== 409) throw error;
      }
    }
    return false;
  }
}
