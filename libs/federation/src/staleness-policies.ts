import { parseDuration } from '@causeway/config';
import { MCS_GROUP } from '@causeway/cluster';

/** A TrafficPolicy as it applies: its namespace and its spec in force. */
export interface TrafficPolicyInForce {
  readonly namespace: string;
  readonly spec: unknown;
}

interface StalenessSpec {
  targetRefs?: Array<{ group?: string; kind?: string; name?: string }>;
  staleness?: { withdrawAfter?: string };
}

/**
 * This cluster's TrafficPolicies that set `staleness.withdrawAfter` on a ServiceImport:
 * the per-service choice to withdraw a silent cluster's endpoints after a while. Only local
 * objects are read (each policy's spec in force, on the targets it holds); nothing from
 * another cluster becomes a policy input.
 */
export class StalenessPolicies {
  constructor(
    private readonly list: () => readonly TrafficPolicyInForce[],
    private readonly onError: (error: unknown) => void,
  ) {}

  /** `namespace/name` of each ServiceImport with a withdrawal TTL -> the shortest TTL in ms. */
  withdrawAfter(): Map<string, number> {
    const result = new Map<string, number>();
    for (const policy of this.list()) {
      const spec = policy.spec as StalenessSpec | undefined;
      const text = spec?.staleness?.withdrawAfter;
      if (!text) continue;
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch (error) {
        this.onError(error);
        continue;
      }
      for (const ref of spec?.targetRefs ?? []) {
        if (ref.group !== MCS_GROUP || ref.kind !== 'ServiceImport' || !ref.name) continue;
        const key = `${policy.namespace}/${ref.name}`;
        result.set(key, Math.min(ms, result.get(key) ?? Infinity));
      }
    }
    return result;
  }
}
