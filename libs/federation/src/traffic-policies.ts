import type { ConditionValue } from '@causeway/catalog';
import { describeRuleIssues, trafficPolicyIssues } from '@causeway/cluster';
import { CONTROLLER_NAME, type PolicyView } from '@causeway/discovery';

/** The fields of a TrafficPolicy object the compilation reads. */
export interface TrafficPolicyObject {
  readonly metadata: {
    readonly namespace: string;
    readonly name: string;
    readonly uid?: string;
    readonly generation?: number;
    /** A string from an API server, a Date from a file-mode source. */
    readonly creationTimestamp?: string | Date;
  };
  readonly spec?: unknown;
}

/** A target of a policy, as `spec.targetRefs` names it (in the policy's namespace). */
interface TargetRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly sectionName?: string;
}

/** Gateway API PolicyAncestorStatus: our conditions for one target of a policy. */
export interface PolicyAncestorStatus {
  readonly ancestorRef: {
    readonly group: string;
    readonly kind: string;
    readonly namespace: string;
    readonly name: string;
    readonly sectionName?: string;
  };
  readonly controllerName: string;
  readonly conditions: readonly ConditionValue[];
}

/** A policy's last valid spec, kept from one compilation to the next (same object, by uid). */
export interface LastValidSpec {
  readonly uid: string;
  readonly generation: number;
  readonly spec: unknown;
}

/** What one TrafficPolicy came to. */
export interface TrafficPolicyVerdict {
  readonly namespace: string;
  readonly name: string;
  /** Why its current spec is refused (none: it is valid). */
  readonly invalid?: string;
  /** The generation whose spec is in force (the current one, or the last valid one); none: nothing applies. */
  readonly inForce?: number;
  /** The spec in force (see `inForce`). */
  readonly spec?: unknown;
  readonly ancestors: readonly PolicyAncestorStatus[];
}

export interface CompiledTrafficPolicies {
  /** What proxies get: each policy's spec in force, with only the targets it holds. */
  readonly policies: readonly PolicyView[];
  readonly verdicts: readonly TrafficPolicyVerdict[];
  /** For the next compilation. */
  readonly lastValid: ReadonlyMap<string, LastValidSpec>;
}

const refsOf = (spec: unknown): TargetRef[] => {
  const refs = (spec as { targetRefs?: unknown } | null)?.targetRefs;
  return Array.isArray(refs) ? (refs as TargetRef[]) : [];
};
/**
 * What a target is to the sidecars: a Service and the ServiceImport of the same name are one
 * service (its requests go by that name either way), so two policies on them conflict.
 */
const refKey = (namespace: string, ref: TargetRef) =>
  `${ref.kind === 'Service' || ref.kind === 'ServiceImport' ? 'service' : ref.kind}/${namespace}/${ref.name}`;
/** Creation time in ms (0 when unknown: the oldest). */
const createdMs = (stamp: string | Date | undefined): number => {
  const ms = stamp === undefined ? 0 : new Date(stamp).getTime();
  return Number.isFinite(ms) ? ms : 0;
};
const describeRef = (namespace: string, ref: TargetRef) =>
  `${ref.kind} ${namespace}/${ref.name}${ref.sectionName ? ` (${ref.sectionName})` : ''}`;

/**
 * Validates the cluster's TrafficPolicies and settles who applies where (pure).
 *
 * - A spec that breaks a rule between its fields is refused (`Accepted=False`, reason
 *   `Invalid`, naming the field); the last valid spec of the same object stays in force.
 * - Two policies on one target (a Service and the ServiceImport of its name are one): the
 *   older one (by creation time, then namespace/name, as the Gateway API's policy attachment
 *   rules say) holds it; the other gets `Conflicted` there.
 * - A target that does not exist: `TargetNotFound` (the policy applies once it does).
 */
export function compileTrafficPolicies(
  objects: readonly TrafficPolicyObject[],
  exists: (kind: string, namespace: string, name: string) => boolean,
  previous: ReadonlyMap<string, LastValidSpec>,
): CompiledTrafficPolicies {
  const lastValid = new Map<string, LastValidSpec>();
  interface Entry {
    readonly object: TrafficPolicyObject;
    readonly invalid?: string;
    readonly inForce?: LastValidSpec;
  }
  const entries: Entry[] = [];
  for (const object of objects) {
    const { namespace, name, uid = '', generation = 0 } = object.metadata;
    const key = `${namespace}/${name}`;
    const issues = trafficPolicyIssues(object.spec);
    if (issues.length === 0) {
      const inForce = { uid, generation, spec: object.spec };
      lastValid.set(key, inForce);
      entries.push({ object, inForce });
      continue;
    }
    const kept = previous.get(key);
    const inForce = kept && kept.uid === uid ? kept : undefined;
    if (inForce) lastValid.set(key, inForce);
    entries.push({ object, invalid: describeRuleIssues(issues), inForce });
  }
  // Oldest first: the first policy to claim a target holds it.
  const order = [...entries].sort((a, b) => {
    const [x, y] = [a.object.metadata, b.object.metadata];
    const byAge = createdMs(x.creationTimestamp) - createdMs(y.creationTimestamp);
    return byAge !== 0 ? byAge : `${x.namespace}/${x.name}`.localeCompare(`${y.namespace}/${y.name}`);
  });
  const holder = new Map<string, string>();
  for (const { object, inForce } of order)
    for (const ref of inForce ? refsOf(inForce.spec) : []) {
      const target = refKey(object.metadata.namespace, ref);
      if (!holder.has(target)) holder.set(target, `${object.metadata.namespace}/${object.metadata.name}`);
    }

  const policies: PolicyView[] = [];
  const verdicts: TrafficPolicyVerdict[] = [];
  for (const { object, invalid, inForce } of entries) {
    const { namespace, name } = object.metadata;
    const self = `${namespace}/${name}`;
    const held = inForce
      ? refsOf(inForce.spec).filter((ref) => holder.get(refKey(namespace, ref)) === self)
      : [];
    if (inForce && held.length > 0)
      policies.push({
        kind: 'TrafficPolicy',
        namespace,
        name,
        spec: { ...(inForce.spec as object), targetRefs: held },
      });
    const accepted = (ref: TargetRef): ConditionValue => {
      if (invalid)
        return {
          type: 'Accepted',
          status: 'False',
          reason: 'Invalid',
          message: inForce
            ? `${invalid}; the last valid spec (generation ${inForce.generation}) stays in force`
            : `${invalid}; nothing of this policy applies`,
        };
      const by = holder.get(refKey(namespace, ref));
      if (by !== self)
        return {
          type: 'Accepted',
          status: 'False',
          reason: 'Conflicted',
          message: `TrafficPolicy ${by} targets ${describeRef(namespace, ref)} too and came first (older, or as old and first by name): it applies there, this one does not`,
        };
      if (!exists(ref.kind, namespace, ref.name))
        return {
          type: 'Accepted',
          status: 'False',
          reason: 'TargetNotFound',
          message: `${describeRef(namespace, ref)} does not exist (the policy applies once it does)`,
        };
      return { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'the policy applies' };
    };
    verdicts.push({
      namespace,
      name,
      ...(invalid ? { invalid } : {}),
      ...(inForce ? { inForce: inForce.generation, spec: inForce.spec } : {}),
      ancestors: refsOf(object.spec).map((ref) => ({
        ancestorRef: {
          group: ref.group ?? '',
          kind: ref.kind,
          namespace,
          name: ref.name,
          ...(ref.sectionName ? { sectionName: ref.sectionName } : {}),
        },
        controllerName: CONTROLLER_NAME,
        conditions: [accepted(ref)],
      })),
    });
  }
  return { policies, verdicts, lastValid };
}
