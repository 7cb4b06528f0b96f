import { parseDuration } from '@causeway/config';
import { MCS_GROUP } from '@causeway/cluster';
import type { ClusterSource, SourceObject } from '@causeway/cluster';

export interface TrafficPolicyObject extends SourceObject {
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
  constructor(
    private readonly source: ClusterSource,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Every TrafficPolicy (for proxy config). */
  list(): readonly TrafficPolicyObject[] {
    return this.source.list<TrafficPolicyObject>('TrafficPolicy');
  }

  /** `namespace/name` of each ServiceImport with a withdrawal TTL -> the shortest TTL in ms. */
  withdrawAfter(): Map<string, number> {
    const result = new Map<string, number>();
    for (const policy of this.list()) {
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
