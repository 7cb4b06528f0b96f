import type { ExportVerdict } from './types.ts';

/** A `metav1.Condition` without its transition time (the writer sets that). */
export interface ConditionValue {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

/**
 * The ServiceExport `Conflict` condition for a verdict: True with the first conflict's
 * reason (and every conflict in the message), or False with reason `NoConflicts`.
 */
export function conflictCondition(verdict: ExportVerdict): ConditionValue {
  const first = verdict.conflicts[0];
  if (!first)
    return {
      type: 'Conflict',
      status: 'False',
      reason: 'NoConflicts',
      message: 'no conflicts with other clusters',
    };
  return {
    type: 'Conflict',
    status: 'True',
    reason: first.reason,
    message: verdict.conflicts.map((conflict) => `${conflict.reason}: ${conflict.message}`).join('; '),
  };
}
