import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type ObjectCache,
} from '@kubernetes/client-node';
import {
  SOURCE_KINDS,
  type ClusterSource,
  type SourceEvent,
  type SourceKind,
  type SourceObject,
  type SourceProblem,
} from './source.ts';

const RESTART_MS = 1_000;
const MAX_RESTART_MS = 30_000;
const CONFLICT_ATTEMPTS = 3;

type List = { items: SourceObject[]; metadata?: { resourceVersion?: string } };

/**
 * A cluster's objects from its API server: one client-node informer (list+watch) per kind.
 * A broken watch (API server restarted, `410 Gone`) stops the informer; it is restarted
 * after a pause, and its re-list brings the cache back in line, with events for every
 * difference. A kind the server does not serve yet (CRD not installed) is retried with
 * backoff and does not hold up the others.
 */
export class KubernetesSource implements ClusterSource {
  readonly mode = 'kubernetes';
  private readonly informers = new Map<SourceKind, Informer<SourceObject> & ObjectCache<SourceObject>>();
  private readonly custom: CustomObjectsApi;
  private stopped = false;

  constructor(
    kubeConfig: KubeConfig,
    private readonly onError: (error: unknown) => void = () => {},
  ) {
    const custom = (this.custom = kubeConfig.makeApiClient(CustomObjectsApi));
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
    const coreLists: Partial<Record<SourceKind, () => Promise<unknown>>> = {
      Service: () => core.listServiceForAllNamespaces(),
      Pod: () => core.listPodForAllNamespaces(),
      EndpointSlice: () => discovery.listEndpointSliceForAllNamespaces(),
    };
    for (const [kind, api] of Object.entries(SOURCE_KINDS) as Array<
      [SourceKind, (typeof SOURCE_KINDS)[SourceKind]]
    >) {
      const path = api.group ? `/apis/${api.group}/${api.version}/${api.plural}` : `/api/v1/${api.plural}`;
      const list = coreLists[kind] ?? (() => custom.listClusterCustomObject(api));
      this.informers.set(
        kind,
        makeInformer<SourceObject>(kubeConfig, path, async () => (await list()) as List),
      );
    }
  }

  async start(onEvent: (event: SourceEvent) => void): Promise<void> {
    const verbs = { add: 'Added', update: 'Updated', delete: 'Deleted' } as const;
    for (const [kind, informer] of this.informers) {
      for (const [verb, type] of Object.entries(verbs) as Array<[keyof typeof verbs, SourceEvent['type']]>)
        informer.on(verb, (object) => onEvent({ type, kind, object }));
      informer.on('error', (error: unknown) => {
        this.onError(error);
        this.restart(informer, RESTART_MS);
      });
    }
    await Promise.all(
      [...this.informers.values()].map((informer) =>
        informer.start().catch((error: unknown) => {
          this.onError(error);
          this.restart(informer, RESTART_MS);
        }),
      ),
    );
  }

  private restart(informer: Informer<SourceObject>, delay: number): void {
    if (this.stopped) return;
    setTimeout(() => {
      if (this.stopped) return;
      informer.start().catch((error: unknown) => {
        this.onError(error);
        this.restart(informer, Math.min(delay * 2, MAX_RESTART_MS));
      });
    }, delay).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const informer of this.informers.values()) await informer.stop();
  }

  get<T extends SourceObject>(kind: SourceKind, namespace: string, name: string): T | undefined {
    return this.informers.get(kind)!.get(name, namespace) as T | undefined;
  }

  list<T extends SourceObject>(kind: SourceKind, namespace?: string): readonly T[] {
    return this.informers.get(kind)!.list(namespace) as readonly T[];
  }

  async updateStatus(
    kind: SourceKind,
    namespace: string,
    name: string,
    update: (current: SourceObject) => unknown,
  ): Promise<boolean> {
    const api = SOURCE_KINDS[kind];
    if (!api.group) throw new Error(`${kind} status is not written by the controller`);
    for (let attempt = 0; attempt < CONFLICT_ATTEMPTS; attempt++) {
      let current: SourceObject;
      try {
        current = (await this.custom.getNamespacedCustomObject({ ...api, namespace, name })) as SourceObject;
      } catch (error) {
        if ((error as { code?: number }).code === 404) return true;
        throw error;
      }
      const status = update(current);
      if (status === undefined) return true;
      try {
        await this.custom.replaceNamespacedCustomObjectStatus({
          ...api,
          namespace,
          name,
          body: { ...current, status },
        });
        return true;
      } catch (error) {
        // 409: someone else wrote first; read again and retry.
        if ((error as { code?: number }).code !== 409) throw error;
      }
    }
    return false;
  }

  problems(): readonly SourceProblem[] {
    return [];
  }

  invalid(): SourceProblem | undefined {
    return undefined;
  }
}
