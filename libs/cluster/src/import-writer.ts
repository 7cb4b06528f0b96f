import { createHash } from 'node:crypto';
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import type { ConditionValue, ExportRecord, MergedService, PeerStatus, Withdrawals } from '@causeway/catalog';
import { Backoff } from '@causeway/config';

const MCS = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceimports' } as const;
export const SERVICE_NAME_LABEL = 'multicluster.kubernetes.io/service-name';
export const SOURCE_CLUSTER_LABEL = 'multicluster.kubernetes.io/source-cluster';
const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
const MANAGED_BY = 'causeway.dev';

/** The ServiceImport condition that says a source cluster has gone silent. */
export const STALE_CONDITION = 'causeway.dev/Stale';

const code = (error: unknown): number | undefined => (error as { code?: number }).code;

/**
 * The name of the EndpointSlice that holds `cluster`'s endpoints of an imported service:
 * both names and a digest of the pair, so that no two pairs share one (`a-b` from `c` and `a`
 * from `b-c` would, by their names alone) and a slice that Kubernetes made for a local
 * Service (`<service>-<5 random characters>`) is never taken for it.
 */
export function importedSliceName(service: string, cluster: string): string {
  const digest = createHash('sha256').update(`${service}/${cluster}`).digest('hex').slice(0, 10);
  return `${`${service}-${cluster}`.slice(0, 253 - digest.length - 1)}-${digest}`;
}

/** What the writer writes: the merged catalog, the records behind it, and liveness. */
export interface ImportPlan {
  readonly catalog: ReadonlyMap<string, MergedService>;
  readonly records: readonly ExportRecord[];
  readonly peers: readonly PeerStatus[];
  readonly withdrawn: Withdrawals;
  /**
   * Services unexported everywhere (tombstones, never silence): their imports are removed
   * even when this writer did not write them (it was restarted since).
   */
  readonly unexported?: readonly string[];
}

type Condition = ConditionValue & { lastTransitionTime: string };

/** Conditions with their transition time kept when the status did not change. */
export function withTransitionTimes(
  next: readonly ConditionValue[],
  previous: readonly Condition[] | undefined,
  now = new Date(),
): Condition[] {
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z');
  return next.map((condition) => {
    const before = previous?.find((c) => c.type === condition.type);
    return {
      ...condition,
      lastTransitionTime: before && before.status === condition.status ? before.lastTransitionTime : stamp,
    };
  });
}

/** The ServiceImport's `Ready` and staleness conditions. */
export function importConditions(
  service: MergedService,
  clusters: readonly string[],
  peers: readonly PeerStatus[],
  withdrawn: ReadonlySet<string>,
): ConditionValue[] {
  const silent = peers.filter((peer) => peer.stale && service.clusters.includes(peer.cluster));
  return [
    {
      type: 'Ready',
      status: 'True',
      reason: 'Ready',
      message:
        clusters.length > 0
          ? `imported from ${clusters.length} cluster(s): ${clusters.join(', ')}`
          : 'imported; every source cluster is withdrawn',
    },
    silent.length === 0
      ? {
          type: STALE_CONDITION,
          status: 'False',
          reason: 'HeartbeatsCurrent',
          message: 'every source cluster has a current heartbeat',
        }
      : {
          type: STALE_CONDITION,
          status: 'True',
          reason: 'HeartbeatMissing',
          message: silent
            .map(
              (peer) =>
                `${peer.cluster}: ${peer.lastHeartbeat ? `no heartbeat since ${peer.lastHeartbeat}` : 'no heartbeat received yet'}` +
                (withdrawn.has(peer.cluster)
                  ? ' (withdrawn by TrafficPolicy staleness)'
                  : ' (endpoints kept)'),
            )
            .join('; '),
        },
  ];
}

/**
 * Writes the merged catalog into the local API server: one ServiceImport per service
 * (spec from the merge, `status.clusters`) and one EndpointSlice per source cluster,
 * labelled with the MCS labels, whose endpoint is that cluster's east-west gateway.
 * Only what the catalog no longer holds (an explicit unexport) is deleted.
 */
export class ImportWriter {
  /**
   * What was last written per service (`namespace/name`), so that an unchanged service is
   * not written again; its keys are the services this writer has written.
   */
  private readonly writtenState = new Map<string, string>();
  /** Unexported services whose leftover imports were looked for since this writer started. */
  private readonly swept = new Set<string>();
  private latest: ImportPlan | undefined;
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Waits between failed writes: 250 ms doubling to 30 s, jittered. */
  private readonly backoff = new Backoff({ firstMs: 250, maxMs: 30_000 });

  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly discovery: DiscoveryV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly onError: (error: unknown) => void = () => {},
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  }

  /**
   * Hands over the newest catalog. Writes run one at a time with the newest catalog
   * only; a failed write (API server busy or gone) is retried with backoff until it
   * succeeds or a newer catalog replaces it.
   */
  submit(plan: ImportPlan): void {
    this.latest = plan;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  private async drain(): Promise<void> {
    while (this.latest) {
      const plan = this.latest;
      this.latest = undefined;
      try {
        await this.apply(plan);
        this.backoff.reset();
      } catch (error) {
        this.onError(error);
        this.latest ??= plan;
        const pending = this.latest;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          if (this.latest === pending) this.submit(pending);
        }, this.backoff.next());
        this.retryTimer.unref();
        return;
      }
    }
  }

  /** Stops retrying. */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.latest = undefined;
  }

  async apply(plan: ImportPlan): Promise<void> {
    const { catalog, records } = plan;
    const byService = new Map<string, ExportRecord[]>();
    for (const record of records) {
      const key = `${record.namespace}/${record.name}`;
      const list = byService.get(key);
      if (list) list.push(record);
      else byService.set(key, [record]);
    }
    for (const [key, service] of catalog) {
      const withdrawn = plan.withdrawn.get(key) ?? new Set<string>();
      const clusters = service.clusters.filter((cluster) => !withdrawn.has(cluster));
      const sources = (byService.get(key) ?? []).filter((r) => clusters.includes(r.cluster));
      const conditions = importConditions(service, clusters, plan.peers, withdrawn);
      const state = JSON.stringify([service, clusters, sources, conditions]);
      if (this.writtenState.get(key) === state) continue;
      // The endpoints of clusters that left go first: once the status says a cluster is
      // gone (withdrawn, unexported), nothing routes to it any more. Slices under a name
      // this writer no longer gives (an earlier release's) go once the new ones are written.
      const slices = await this.managedSlices(service.namespace, service.name);
      const sourceOf = (slice: V1EndpointSlice) => slice.metadata?.labels?.[SOURCE_CLUSTER_LABEL] ?? '';
      await this.deleteSlices(
        service.namespace,
        slices.filter((slice) => !clusters.includes(sourceOf(slice))),
      );
      await this.writeService(service, clusters, sources, conditions);
      await this.deleteSlices(
        service.namespace,
        slices.filter(
          (slice) =>
            clusters.includes(sourceOf(slice)) &&
            slice.metadata?.name !== importedSliceName(service.name, sourceOf(slice)),
        ),
      );
      this.writtenState.set(key, state);
    }
    for (const key of plan.unexported ?? []) {
      if (this.swept.has(key) || this.writtenState.has(key) || catalog.has(key)) continue;
      const [namespace, name] = key.split('/') as [string, string];
      await this.deleteSlices(namespace, await this.managedSlices(namespace, name));
      await this.custom.deleteNamespacedCustomObject({ ...MCS, namespace, name }).catch((error: unknown) => {
        if (code(error) !== 404) throw error;
      });
      this.swept.add(key);
    }
    for (const key of catalog.keys()) this.swept.delete(key);
    for (const key of [...this.writtenState.keys()]) {
      if (catalog.has(key)) continue;
      const [namespace, name] = key.split('/') as [string, string];
      await this.deleteSlices(namespace, await this.managedSlices(namespace, name));
      await this.custom.deleteNamespacedCustomObject({ ...MCS, namespace, name }).catch((error: unknown) => {
        if (code(error) !== 404) throw error;
      });
      this.writtenState.delete(key);
    }
  }

  private async writeService(
    service: MergedService,
    clusters: readonly string[],
    sources: readonly ExportRecord[],
    conditions: readonly ConditionValue[],
  ): Promise<void> {
    const core = this.core;
    await core
      .createNamespace({ body: { metadata: { name: service.namespace } } })
      .catch((error: unknown) => {
        if (code(error) !== 409) throw error;
      });
    // Endpoints first: whoever sees the ServiceImport's clusters finds their slices.
    for (const record of sources) await this.writeSlice(record);
    const custom = this.custom;
    const spec = {
      type: service.type,
      sessionAffinity: service.sessionAffinity,
      ports: service.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        protocol: p.protocol,
        port: p.port,
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
    };
    let current:
      | { metadata: { resourceVersion?: string }; spec?: unknown; status?: { conditions?: Condition[] } }
      | undefined;
    try {
      current = (await custom.getNamespacedCustomObject({
        ...MCS,
        namespace: service.namespace,
        name: service.name,
      })) as typeof current;
    } catch (error) {
      if (code(error) !== 404) throw error;
    }
    const body = {
      apiVersion: `${MCS.group}/${MCS.version}`,
      kind: 'ServiceImport',
      metadata: {
        name: service.name,
        namespace: service.namespace,
        ...(current ? { resourceVersion: current.metadata.resourceVersion } : {}),
      },
      spec,
    };
    const saved = (
      current
        ? await custom.replaceNamespacedCustomObject({
            ...MCS,
            namespace: service.namespace,
            name: service.name,
            body,
          })
        : await custom.createNamespacedCustomObject({ ...MCS, namespace: service.namespace, body })
    ) as { metadata: { resourceVersion?: string } };
    await custom.replaceNamespacedCustomObjectStatus({
      ...MCS,
      namespace: service.namespace,
      name: service.name,
      body: {
        ...body,
        metadata: { ...body.metadata, resourceVersion: saved.metadata.resourceVersion },
        status: {
          clusters: clusters.map((cluster) => ({ cluster })),
          conditions: withTransitionTimes(conditions, current?.status?.conditions),
        },
      },
    });
  }

  /** The EndpointSlices this writer made for `namespace/name` (every source cluster's). */
  private async managedSlices(namespace: string, name: string): Promise<V1EndpointSlice[]> {
    const list = await this.discovery.listNamespacedEndpointSlice({
      namespace,
      labelSelector: `${SERVICE_NAME_LABEL}=${name},${MANAGED_BY_LABEL}=${MANAGED_BY}`,
    });
    return list.items;
  }

  private async deleteSlices(namespace: string, slices: readonly V1EndpointSlice[]): Promise<void> {
    for (const slice of slices)
      await this.discovery
        .deleteNamespacedEndpointSlice({ name: slice.metadata!.name!, namespace })
        .catch((error: unknown) => {
          if (code(error) !== 404) throw error;
        });
  }

  private async writeSlice(record: ExportRecord): Promise<void> {
    const discovery = this.discovery;
    const gateways = record.gatewayAddresses.map((address) => {
      const colon = address.lastIndexOf(':');
      return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
    });
    // The API server refuses loopback IPs in EndpointSlices; a gateway on loopback (every
    // cluster on one machine) is written as an FQDN slice, as a hostname gateway would be.
    const isIp = gateways.every((g) => /^\d{1,3}(\.\d{1,3}){3}$/.test(g.host) && !g.host.startsWith('127.'));
    const name = importedSliceName(record.name, record.cluster);
    const body: V1EndpointSlice = {
      metadata: {
        name,
        namespace: record.namespace,
        labels: {
          [SERVICE_NAME_LABEL]: record.name,
          [SOURCE_CLUSTER_LABEL]: record.cluster,
          [MANAGED_BY_LABEL]: MANAGED_BY,
        },
      },
      addressType: isIp ? 'IPv4' : 'FQDN',
      endpoints: gateways.map((g) => ({
        addresses: [g.host],
        conditions: { ready: record.readyEndpoints > 0 },
      })),
      ports: [{ name: 'east-west', port: gateways[0]?.port ?? 15443, protocol: 'TCP' }],
    };
    try {
      const existing = await discovery.readNamespacedEndpointSlice({ name, namespace: record.namespace });
      if (existing.addressType !== body.addressType) {
        // A slice's addressType cannot change (a gateway moved between an IP and a name):
        // the slice is made again.
        await discovery.deleteNamespacedEndpointSlice({ name, namespace: record.namespace });
        await discovery.createNamespacedEndpointSlice({ namespace: record.namespace, body });
        return;
      }
      await discovery.replaceNamespacedEndpointSlice({
        name,
        namespace: record.namespace,
        body: {
          ...body,
          metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion },
        },
      });
    } catch (error) {
      if (code(error) !== 404) throw error;
      await discovery.createNamespacedEndpointSlice({ namespace: record.namespace, body });
    }
  }
}
