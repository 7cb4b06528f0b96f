import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type ObjectCache,
} from '@kubernetes/client-node';
import { Backoff } from '@causeway/config';
import {
  SOURCE_KINDS,
  type ClusterSource,
  type SourceEvent,
  type SourceKind,
  type SourceObject,
  type SourceProblem,
} from './source.ts';

/** The Secrets the controller reads: those of HTTPS listeners' certificates. */
const TLS_SECRETS = 'type=kubernetes.io/tls';

const RESTART_MS = 1_000;
const MAX_RESTART_MS = 30_000;
const CONFLICT_ATTEMPTS = 3;

type List = { items: SourceObject[]; metadata?: { resourceVersion?: string } };

/**
 * A cluster's objects from its API server: one client-node informer (list+watch) per kind.
 * `410 Gone` re-lists at once (client-node); any other broken watch or failed list stops
 * the informer, which is restarted after a jittered pause (up to 1 s, doubling to 30 s until a list
 * succeeds), and its re-list brings the cache back in line, with events for every
 * difference. A kind the server does not serve yet (CRD not installed) is retried the
 * same way and does not hold up the others.
 */
export class KubernetesSource implements ClusterSource {
  readonly mode = 'kubernetes';
  private readonly informers = new Map<SourceKind, Informer<SourceObject> & ObjectCache<SourceObject>>();
  private readonly custom: CustomObjectsApi;
  private stopped = false;
  /** Kinds whose list has succeeded at least once. */
  private readonly listed = new Set<SourceKind>();
  /** The restart backoff per kind (doubling while lists fail). */
  private readonly backoffs = new Map<SourceKind, Backoff>();

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
      Secret: () => core.listSecretForAllNamespaces({ fieldSelector: TLS_SECRETS }),
    };
    for (const [kind, api] of Object.entries(SOURCE_KINDS) as Array<
      [SourceKind, (typeof SOURCE_KINDS)[SourceKind]]
    >) {
      const base = api.group ? `/apis/${api.group}/${api.version}/${api.plural}` : `/api/v1/${api.plural}`;
      // (The watch keeps the path's query: only TLS Secrets are listed and watched.)
      const path = kind === 'Secret' ? `${base}?fieldSelector=${encodeURIComponent(TLS_SECRETS)}` : base;
      const list = coreLists[kind] ?? (() => custom.listClusterCustomObject(api));
      this.informers.set(
        kind,
        makeInformer<SourceObject>(kubeConfig, path, async () => {
          const result = (await list()) as List;
          // A successful list: the cache is complete from here on, and backoff starts over.
          this.listed.add(kind);
          this.backoffs.get(kind)?.reset();
          return result;
        }),
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
        this.restart(kind);
      });
    }
    // An informer's start resolves after its first list succeeded or failed (a failure is
    // reported as an error event and retried); it never waits for a kind that is missing.
    await Promise.all(
      [...this.informers].map(([kind, informer]) =>
        informer.start().catch((error: unknown) => {
          this.onError(error);
          this.restart(kind);
        }),
      ),
    );
  }

  /** Restarts one informer after a pause that doubles until a list succeeds again. */
  private restart(kind: SourceKind): void {
    if (this.stopped) return;
    let backoff = this.backoffs.get(kind);
    if (!backoff)
      this.backoffs.set(kind, (backoff = new Backoff({ firstMs: RESTART_MS, maxMs: MAX_RESTART_MS })));
    setTimeout(() => {
      if (this.stopped) return;
      this.informers
        .get(kind)!
        .start()
        .catch((error: unknown) => {
          this.onError(error);
          this.restart(kind);
        });
    }, backoff.next()).unref();
  }

  synced(kind: SourceKind): boolean {
    return this.listed.has(kind);
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
