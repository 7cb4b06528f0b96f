import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  makeInformer,
  type KubeConfig,
  type KubernetesObject,
  type V1EndpointSlice,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import {
  deriveLocalExport,
  type ConditionValue,
  type ExportRecord,
  type LocalEndpoint,
  type ServiceExportView,
} from '@causeway/catalog';

const MCS = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports' } as const;
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Backoff after an informer error before it restarts (watch dropped, API server gone). */
const INFORMER_RESTART_MS = 1_000;

/** A change this reconciler publishes: an export (new or updated) or an unexport. */
export type LocalExportEvent =
  | { readonly kind: 'ServiceExported'; readonly record: ExportRecord }
  | { readonly kind: 'ServiceUnexported'; readonly namespace: string; readonly name: string };

/** One-line form of an event, for logs. */
export function describeEvent(event: LocalExportEvent): string {
  return event.kind === 'ServiceExported'
    ? `ServiceExported ${event.record.namespace}/${event.record.name} rev ${event.record.revision} (${event.record.readyEndpoints} ready)`
    : `ServiceUnexported ${event.namespace}/${event.name}`;
}

interface ServiceExportObject extends KubernetesObject, ServiceExportView {
  metadata: { name: string; namespace: string; creationTimestamp?: Date; resourceVersion?: string };
  status?: {
    conditions?: Array<ConditionValue & { lastTransitionTime: string; observedGeneration?: number }>;
  };
}

/**
 * Watches this cluster's ServiceExports, Services and EndpointSlices (client-node
 * informers; list+watch, re-listed on errors), derives each export, writes its `Valid`
 * condition through the status subresource, and reports exports and unexports.
 * Watch callbacks only enqueue keys; one loop handles them in order.
 */
export class ExportReconciler {
  private readonly queue = new Set<string>();
  private running: Promise<void> | undefined;
  /** What was last reported per exported service (the record without its revision). */
  private readonly exported = new Map<string, string>();
  private revision = Date.now();
  private readonly informers: Array<{ start(): Promise<void>; stop(): void }> = [];
  private stopped = false;
  private readonly serviceExports;
  private readonly services;
  private readonly slices;
  private readonly pods;
  private readonly custom: CustomObjectsApi;

  constructor(
    private readonly options: {
      kubeConfig: KubeConfig;
      cluster: string;
      /** Serving identities are `spiffe://<trustDomain>/ns/<ns>/sa/<pod's service account>`. */
      trustDomain: string;
      gatewayAddresses: readonly string[];
      onEvent: (event: LocalExportEvent) => void;
      onError?: (error: unknown) => void;
    },
  ) {
    const { kubeConfig } = options;
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.custom = custom;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
    this.serviceExports = makeInformer<ServiceExportObject>(
      kubeConfig,
      `/apis/${MCS.group}/${MCS.version}/${MCS.plural}`,
      async () =>
        (await custom.listClusterCustomObject(MCS)) as {
          items: ServiceExportObject[];
          metadata?: { resourceVersion?: string };
        },
    );
    this.services = makeInformer<V1Service>(kubeConfig, '/api/v1/services', () =>
      core.listServiceForAllNamespaces(),
    );
    this.slices = makeInformer<V1EndpointSlice>(kubeConfig, '/apis/discovery.k8s.io/v1/endpointslices', () =>
      discovery.listEndpointSliceForAllNamespaces(),
    );
    this.pods = makeInformer<V1Pod>(kubeConfig, '/api/v1/pods', () => core.listPodForAllNamespaces());
    // A pod's service account never changes; a pod that appears after its slice names it
    // re-reconciles the services whose slices point at it.
    const enqueuePod = (pod: V1Pod): void => {
      const namespace = pod.metadata?.namespace;
      for (const slice of this.slices.list(namespace)) {
        const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
        if (
          service &&
          slice.endpoints?.some((e) => e.targetRef?.kind === 'Pod' && e.targetRef.name === pod.metadata?.name)
        )
          this.enqueue(`${namespace}/${service}`);
      }
    };
    this.pods.on('add', enqueuePod);
    this.pods.on('delete', enqueuePod);
    const enqueueObject = (object: KubernetesObject): void =>
      this.enqueue(`${object.metadata?.namespace}/${object.metadata?.name}`);
    const enqueueSlice = (slice: V1EndpointSlice): void => {
      const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (service) this.enqueue(`${slice.metadata?.namespace}/${service}`);
    };
    for (const verb of ['add', 'update', 'delete'] as const) {
      this.serviceExports.on(verb, enqueueObject);
      this.services.on(verb, enqueueObject);
      this.slices.on(verb, enqueueSlice);
    }
    for (const informer of [this.serviceExports, this.services, this.slices, this.pods]) {
      // Scenario: the API server restarts or the watch breaks. The informer stops; it is
      // restarted after a pause and re-lists, and the re-list enqueues everything again.
      informer.on('error', (error: unknown) => {
        options.onError?.(error);
        if (this.stopped) return;
        setTimeout(() => {
          if (!this.stopped) informer.start().catch((e: unknown) => options.onError?.(e));
        }, INFORMER_RESTART_MS);
      });
      this.informers.push(informer);
    }
  }

  async start(): Promise<void> {
    for (const informer of this.informers) await informer.start();
    for (const se of this.serviceExports.list()) this.enqueue(`${se.metadata.namespace}/${se.metadata.name}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const informer of this.informers) informer.stop();
    await this.running;
  }

  /**
   * The ready and not-ready endpoints of a local Service, from its EndpointSlices: what
   * local proxies route to (and the east-west gateway forwards to).
   */
  localEndpoints(namespace: string, name: string): LocalEndpoint[] {
    const endpoints: LocalEndpoint[] = [];
    for (const slice of this.slices.list(namespace)) {
      if (slice.metadata?.labels?.[SERVICE_NAME_LABEL] !== name) continue;
      if (slice.addressType === 'FQDN') continue;
      const ports = (slice.ports ?? []).map((port) => ({
        name: port.name ?? '',
        port: port.port ?? 0,
        protocol: port.protocol ?? 'TCP',
      }));
      for (const endpoint of slice.endpoints ?? []) {
        for (const address of endpoint.addresses) {
          endpoints.push({
            address,
            ready: endpoint.conditions?.ready !== false,
            ports,
            ...(endpoint.zone ? { zone: endpoint.zone } : {}),
          });
        }
      }
    }
    return endpoints.sort((a, b) => a.address.localeCompare(b.address));
  }

  /** Whether a Service exists in the local API server (informer cache). */
  hasService(namespace: string, name: string): boolean {
    return this.services.get(name, namespace) !== undefined;
  }

  /** The SPIFFE IDs of the pods behind a service's endpoints, sorted, each once. */
  private servingIdentities(namespace: string, slices: readonly V1EndpointSlice[]): string[] {
    const identities = new Set<string>();
    for (const endpoint of slices.flatMap((slice) => slice.endpoints ?? [])) {
      if (endpoint.targetRef?.kind !== 'Pod' || !endpoint.targetRef.name) continue;
      const pod = this.pods.get(endpoint.targetRef.name, namespace);
      if (!pod) continue;
      const account = pod.spec?.serviceAccountName || 'default';
      identities.add(`spiffe://${this.options.trustDomain}/ns/${namespace}/sa/${account}`);
    }
    return [...identities].sort();
  }

  /** Resolves once every queued key has been handled. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private enqueue(key: string): void {
    this.queue.add(key);
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.size > 0 && !this.stopped) {
      const key = this.queue.values().next().value as string;
      this.queue.delete(key);
      try {
        await this.reconcile(key);
      } catch (error) {
        this.options.onError?.(error);
      }
    }
  }

  private async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const serviceExport = this.serviceExports.get(name, namespace);
    if (!serviceExport) {
      if (this.exported.delete(key)) this.options.onEvent({ kind: 'ServiceUnexported', namespace, name });
      return;
    }
    const service = this.services.get(name, namespace) as V1Service | undefined;
    const slices = this.slices
      .list(namespace)
      .filter((slice) => slice.metadata?.labels?.[SERVICE_NAME_LABEL] === name);
    this.revision = Math.max(this.revision + 1, Date.now());
    const derived = deriveLocalExport({
      cluster: this.options.cluster,
      serviceExport,
      service: service as Parameters<typeof deriveLocalExport>[0]['service'],
      slices: slices as Parameters<typeof deriveLocalExport>[0]['slices'],
      gatewayAddresses: this.options.gatewayAddresses,
      identities: this.servingIdentities(namespace, slices),
      revision: this.revision,
    });
    const conditions: ConditionValue[] = [derived.valid];
    if (!derived.record)
      conditions.push({
        type: 'Ready',
        status: 'False',
        reason: 'Failed',
        message: `not exported: ${derived.valid.message}`,
      });
    for (const condition of conditions) {
      // The informer's copy says whether a write is needed at all.
      const current = serviceExport.status?.conditions?.find((c) => c.type === condition.type);
      if (
        current?.status !== condition.status ||
        current.reason !== condition.reason ||
        current.message !== condition.message
      )
        await this.writeCondition(namespace, name, condition);
    }
    if (derived.record) {
      // Status writes (ours included) and unrelated changes come back as watch events: only
      // a real change of what is exported makes a new revision.
      const { revision: _revision, ...content } = derived.record;
      const signature = JSON.stringify(content);
      if (this.exported.get(key) === signature) return;
      this.exported.set(key, signature);
      this.options.onEvent({ kind: 'ServiceExported', record: derived.record });
    } else if (this.exported.delete(key)) {
      this.options.onEvent({ kind: 'ServiceUnexported', namespace, name });
    }
  }

  /** Sets one condition through /status, keeping lastTransitionTime when the status holds. */
  async writeCondition(namespace: string, name: string, condition: ConditionValue): Promise<void> {
    const custom = this.custom;
    for (let attempt = 0; attempt < 3; attempt++) {
      let current: ServiceExportObject;
      try {
        current = (await custom.getNamespacedCustomObject({
          ...MCS,
          namespace,
          name,
        })) as ServiceExportObject;
      } catch (error) {
        if ((error as { code?: number }).code === 404) return;
        throw error;
      }
      const conditions = current.status?.conditions ?? [];
      const previous = conditions.find((c) => c.type === condition.type);
      if (
        previous &&
        previous.status === condition.status &&
        previous.reason === condition.reason &&
        previous.message === condition.message
      ) {
        return;
      }
      const next = {
        ...condition,
        lastTransitionTime:
          previous && previous.status === condition.status
            ? previous.lastTransitionTime
            : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      };
      const body = {
        ...current,
        status: {
          ...current.status,
          conditions: [...conditions.filter((c) => c.type !== condition.type), next],
        },
      };
      try {
        await custom.replaceNamespacedCustomObjectStatus({ ...MCS, namespace, name, body });
        return;
      } catch (error) {
        // 409: someone else wrote first; read again and retry.
        if ((error as { code?: number }).code !== 409) throw error;
      }
    }
  }
}
