import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import {
  deriveLocalExport,
  servicePorts,
  type ClustersetService,
  type ConditionValue,
  type ExportRecord,
  type LocalExport,
  type LocalEndpoint,
  type ServiceExportView,
  type ServiceView,
} from '@causeway/catalog';
import type { ClusterSource, SourceEvent, SourceObject } from '@causeway/cluster';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** What an export is derived from: until each has been listed, no export is derived. */
const INPUT_KINDS = ['ServiceExport', 'Service', 'EndpointSlice', 'Pod'] as const;

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

type Condition = ConditionValue & { lastTransitionTime: string; observedGeneration?: number };

interface ServiceExportObject extends SourceObject, ServiceExportView {
  metadata: SourceObject['metadata'] & { creationTimestamp?: Date };
  status?: { conditions?: Condition[] };
}

type Slice = V1EndpointSlice & SourceObject;

/**
 * Derives this cluster's exports from its ServiceExports, Services, EndpointSlices and
 * Pods (read from a cluster source), writes each export's `Valid` condition, and reports
 * exports and unexports. Source events only enqueue keys; one loop handles them in order.
 */
export class ExportReconciler {
  private readonly queue = new Set<string>();
  private running: Promise<void> | undefined;
  /** What was last reported per exported service (the record without its revision). */
  private readonly exported = new Map<string, string>();
  private revision = Date.now();
  private stopped = false;
  /** Keys seen before every input kind was listed (see {@link release}). */
  private readonly held = new Set<string>();

  constructor(
    private readonly options: {
      source: ClusterSource;
      cluster: string;
      /** Serving identities are `spiffe://<trustDomain>/ns/<ns>/sa/<pod's service account>`. */
      trustDomain: string;
      gatewayAddresses: readonly string[];
      onEvent: (event: LocalExportEvent) => void;
      onError?: (error: unknown) => void;
    },
  ) {}

  /** Queues what a source event touches; returns true if it concerned exports at all. */
  handle(event: SourceEvent): boolean {
    const { namespace, name, labels } = event.object.metadata;
    switch (event.kind) {
      case 'ServiceExport':
      case 'Service':
        this.enqueue(`${namespace}/${name}`);
        return true;
      case 'EndpointSlice': {
        const service = labels?.[SERVICE_NAME_LABEL];
        if (service) this.enqueue(`${namespace}/${service}`);
        return true;
      }
      case 'Pod':
        // A pod that appears after its slice names it, or whose service account changed
        // (file mode: a workload registered again), re-reconciles the services whose
        // slices point at it.
        for (const slice of this.slices(namespace)) {
          const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
          if (
            service &&
            slice.endpoints?.some((e) => e.targetRef?.kind === 'Pod' && e.targetRef.name === name)
          )
            this.enqueue(`${namespace}/${service}`);
        }
        return true;
      default:
        return false;
    }
  }

  /**
   * Queues what was held back while a kind an export reads had not been listed yet (a
   * controller restarted while its API server failed some lists): publishing then would
   * replace a good record with one missing endpoints. Called on every tick.
   */
  release(): void {
    if (this.held.size === 0 || !this.listedAll()) return;
    for (const key of this.held) this.enqueue(key);
    this.held.clear();
  }

  /**
   * Whether every export has been derived from complete lists: none held back, none
   * queued or being handled (the orphan sweep relies on it).
   */
  complete(): boolean {
    return this.held.size === 0 && this.queue.size === 0 && !this.running && this.listedAll();
  }

  /** The kinds whose list has not succeeded yet (exports wait for them). */
  unlisted(): string[] {
    return INPUT_KINDS.filter((kind) => !this.options.source.synced(kind));
  }

  private listedAll(): boolean {
    return INPUT_KINDS.every((kind) => this.options.source.synced(kind));
  }

  /** Queues every ServiceExport (after the first listing). */
  resync(): void {
    for (const se of this.options.source.list('ServiceExport'))
      this.enqueue(`${se.metadata.namespace}/${se.metadata.name}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private slices(namespace: string): readonly Slice[] {
    return this.options.source.list<Slice>('EndpointSlice', namespace);
  }

  /**
   * The ready and not-ready endpoints of a local Service, from its EndpointSlices: what
   * local proxies route to (and the east-west gateway forwards to).
   */
  localEndpoints(namespace: string, name: string): LocalEndpoint[] {
    const endpoints: LocalEndpoint[] = [];
    for (const slice of this.slices(namespace)) {
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

  /**
   * This cluster's Services that local proxies reach by cluster-local names only: each
   * Service (ExternalName aside) that `served` (`namespace/name`: the clusterset gives it a
   * local backend already) does not name, with its endpoints and the identities serving them.
   * A Service with no mesh workload behind it (no pod, so no identity to check) is left out.
   */
  clusterLocalServices(served: ReadonlySet<string>): ClustersetService[] {
    const services: ClustersetService[] = [];
    for (const service of this.options.source.list<V1Service & SourceObject>('Service')) {
      const { namespace, name } = service.metadata;
      if (served.has(`${namespace}/${name}`) || service.spec?.type === 'ExternalName') continue;
      const slices = this.slices(namespace).filter(
        (slice) => slice.metadata?.labels?.[SERVICE_NAME_LABEL] === name,
      );
      const identities = this.servingIdentities(namespace, slices);
      if (identities.length === 0) continue;
      services.push({
        namespace,
        name,
        hostname: `${name}.${namespace}.svc.cluster.local`,
        scope: 'cluster',
        type: service.spec?.clusterIP === 'None' ? 'Headless' : 'ClusterSetIP',
        ports: servicePorts(service as ServiceView),
        backends: [
          {
            kind: 'local',
            cluster: this.options.cluster,
            endpoints: this.localEndpoints(namespace, name),
            identities,
          },
        ],
        withdrawn: [],
      });
    }
    return services.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  }

  /** Whether a Service exists in the local API server (informer cache). */
  hasService(namespace: string, name: string): boolean {
    return this.options.source.get('Service', namespace, name) !== undefined;
  }

  /** The SPIFFE IDs of the pods behind a service's endpoints, sorted, each once. */
  private servingIdentities(namespace: string, slices: readonly V1EndpointSlice[]): string[] {
    const identities = new Set<string>();
    for (const endpoint of slices.flatMap((slice) => slice.endpoints ?? [])) {
      if (endpoint.targetRef?.kind !== 'Pod' || !endpoint.targetRef.name) continue;
      const pod = this.options.source.get<V1Pod & SourceObject>('Pod', namespace, endpoint.targetRef.name);
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

  /**
   * File mode: an export whose ServiceExport is malformed, or whose Service could not be
   * read because it is malformed, is not valid; the condition names the file and field.
   */
  private malformed(namespace: string, name: string, hasService: boolean): LocalExport | undefined {
    const { source } = this.options;
    const own = source.invalid('ServiceExport', namespace, name);
    if (own)
      return {
        valid: {
          type: 'Valid',
          status: 'False',
          reason: 'Malformed',
          message: `${own.file}: ${own.message}`,
        },
      };
    const service = hasService ? undefined : source.invalid('Service', namespace, name);
    if (service)
      return {
        valid: {
          type: 'Valid',
          status: 'False',
          reason: 'NoService',
          message: `Service ${namespace}/${name} is malformed (${service.file}: ${service.message})`,
        },
      };
    return undefined;
  }

  private async reconcile(key: string): Promise<void> {
    if (!this.listedAll()) {
      this.held.add(key);
      return;
    }
    const [namespace, name] = key.split('/') as [string, string];
    const serviceExport = this.options.source.get<ServiceExportObject>('ServiceExport', namespace, name);
    if (!serviceExport) {
      if (this.exported.delete(key)) this.options.onEvent({ kind: 'ServiceUnexported', namespace, name });
      return;
    }
    const service = this.options.source.get<V1Service & SourceObject>('Service', namespace, name);
    const slices = this.slices(namespace).filter(
      (slice) => slice.metadata?.labels?.[SERVICE_NAME_LABEL] === name,
    );
    this.revision = Math.max(this.revision + 1, Date.now());
    const derived =
      this.malformed(namespace, name, service !== undefined) ??
      deriveLocalExport({
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
    await this.options.source.updateStatus('ServiceExport', namespace, name, (object) => {
      const current = object as ServiceExportObject;
      const conditions = current.status?.conditions ?? [];
      const previous = conditions.find((c) => c.type === condition.type);
      if (
        previous &&
        previous.status === condition.status &&
        previous.reason === condition.reason &&
        previous.message === condition.message
      )
        return undefined;
      const next = {
        ...condition,
        lastTransitionTime:
          previous && previous.status === condition.status
            ? previous.lastTransitionTime
            : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      };
      return {
        ...current.status,
        conditions: [...conditions.filter((c) => c.type !== condition.type), next],
      };
    });
  }
}
