import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { parseDuration } from '@causeway/config';
import { MCS_GROUP, POLICY_GROUP } from './crds/index.ts';
import { ResourceWatch } from './resource-watch.ts';

const TRAFFIC_POLICIES = { group: POLICY_GROUP, version: 'v1alpha1', plural: 'trafficpolicies' } as const;

export interface TrafficPolicyObject extends KubernetesObject {
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
  private readonly watch: ResourceWatch<TrafficPolicyObject>;

  constructor(
    kubeConfig: KubeConfig,
    onChange: () => void,
    private readonly onError: (error: unknown) => void,
  ) {
    this.watch = new ResourceWatch(kubeConfig, TRAFFIC_POLICIES, onChange, onError);
  }

  async start(): Promise<void> {
    await this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** Every TrafficPolicy (for proxy config). */
  list(): readonly TrafficPolicyObject[] {
    return this.watch.list();
  }

  /** `namespace/name` of each ServiceImport with a withdrawal TTL -> the shortest TTL in ms. */
  withdrawAfter(): Map<string, number> {
    const result = new Map<string, number>();
    for (const policy of this.watch.list()) {
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
