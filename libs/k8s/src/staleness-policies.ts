import {
  CustomObjectsApi,
  makeInformer,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { parseDuration } from '@causeway/config';
import { MCS_GROUP, POLICY_GROUP } from './crds/index.ts';

const TRAFFIC_POLICIES = { group: POLICY_GROUP, version: 'v1alpha1', plural: 'trafficpolicies' } as const;
const RESTART_MS = 1_000;

interface TrafficPolicyObject extends KubernetesObject {
  metadata: { name: string; namespace: string };
  spec?: {
    targetRefs?: Array<{ group?: string; kind?: string; name?: string }>;
    staleness?: { withdrawAfter?: string };
  };
}

/**
 * This cluster's TrafficPolicies that set `staleness.withdrawAfter` on a ServiceImport:
 * the per-service choice to withdraw a silent cluster's endpoints after a while. Only local
 * objects are read; nothing from another cluster becomes a policy input.
 */
export class StalenessPolicies {
  private readonly informer;
  private stopped = false;

  constructor(
    kubeConfig: KubeConfig,
    private readonly onChange: () => void,
    private readonly onError: (error: unknown) => void,
  ) {
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.informer = makeInformer<TrafficPolicyObject>(
      kubeConfig,
      `/apis/${TRAFFIC_POLICIES.group}/${TRAFFIC_POLICIES.version}/${TRAFFIC_POLICIES.plural}`,
      async () =>
        (await custom.listClusterCustomObject(TRAFFIC_POLICIES)) as {
          items: TrafficPolicyObject[];
          metadata?: { resourceVersion?: string };
        },
    );
    for (const verb of ['add', 'update', 'delete'] as const) this.informer.on(verb, () => this.onChange());
    this.informer.on('error', (error: unknown) => {
      onError(error);
      if (this.stopped) return;
      setTimeout(() => {
        if (!this.stopped) this.informer.start().catch(onError);
      }, RESTART_MS);
    });
  }

  async start(): Promise<void> {
    await this.informer.start();
  }

  stop(): void {
    this.stopped = true;
    this.informer.stop();
  }

  /** `namespace/name` of each ServiceImport with a withdrawal TTL -> the shortest TTL in ms. */
  withdrawAfter(): Map<string, number> {
    const result = new Map<string, number>();
    for (const policy of this.informer.list()) {
      const text = policy.spec?.staleness?.withdrawAfter;
      if (!text) continue;
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch (error) {
        this.onError(error);
        continue;
      }
      for (const ref of policy.spec?.targetRefs ?? []) {
        if (ref.group !== MCS_GROUP || ref.kind !== 'ServiceImport' || !ref.name) continue;
        const key = `${policy.metadata.namespace}/${ref.name}`;
        result.set(key, Math.min(ms, result.get(key) ?? Infinity));
      }
    }
    return result;
  }
}
