import {
  CustomObjectsApi,
  makeInformer,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';

const RESTART_MS = 1_000;

/** A custom resource kind: where it lives in the API. */
export interface ResourceKind {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
}

/**
 * List+watch of one custom resource kind in every namespace (a client-node informer),
 * restarted after a pause when the watch breaks (the re-list brings everything back).
 * Any change calls `onChange`; `list()` reads the informer's cache.
 */
export class ResourceWatch<T extends KubernetesObject> {
  private readonly informer;
  private stopped = false;

  constructor(
    kubeConfig: KubeConfig,
    readonly kind: ResourceKind,
    onChange: () => void,
    private readonly onError: (error: unknown) => void,
  ) {
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.informer = makeInformer<T>(
      kubeConfig,
      `/apis/${kind.group}/${kind.version}/${kind.plural}`,
      async () =>
        (await custom.listClusterCustomObject(kind)) as {
          items: T[];
          metadata?: { resourceVersion?: string };
        },
    );
    for (const verb of ['add', 'update', 'delete'] as const) this.informer.on(verb, () => onChange());
    this.informer.on('error', (error: unknown) => {
      onError(error);
      if (this.stopped) return;
      setTimeout(() => {
        if (!this.stopped) this.informer.start().catch(onError);
      }, RESTART_MS);
    });
  }

  /**
   * Starts the watch. A kind the API server does not serve (its CRD not installed) or an
   * unreachable server is reported and retried with backoff; it does not stop the caller.
   */
  async start(): Promise<void> {
    try {
      await this.informer.start();
    } catch (error) {
      this.onError(error);
      this.retry(RESTART_MS);
    }
  }

  private retry(delay: number): void {
    if (this.stopped) return;
    setTimeout(() => {
      if (this.stopped) return;
      this.informer.start().catch((error: unknown) => {
        this.onError(error);
        this.retry(Math.min(delay * 2, 30_000));
      });
    }, delay).unref();
  }

  stop(): void {
    this.stopped = true;
    this.informer.stop();
  }

  list(): readonly T[] {
    return this.informer.list();
  }
}
