/**
 * What a TrafficPolicy's schema cannot say: rules between its fields. File mode refuses a
 * policy that breaks one (naming the file, line and field, the last valid version kept);
 * in Kubernetes mode the controller marks it `Accepted=False` with reason `Invalid` and
 * keeps applying its last valid spec.
 */

/** One broken rule: the field (from the object's root) and why. */
export interface RuleIssue {
  readonly path: ReadonlyArray<string | number>;
  readonly message: string;
}

/** The kinds a TrafficPolicy attaches to, by API group. */
export const TRAFFIC_POLICY_TARGETS: ReadonlyArray<{ group: string; kind: string }> = [
  { group: '', kind: 'Service' },
  { group: 'multicluster.x-k8s.io', kind: 'ServiceImport' },
  { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' },
  { group: 'gateway.networking.k8s.io', kind: 'GRPCRoute' },
];

/** A Gateway API duration (`1h30m`, `250ms`, `0s`) in milliseconds; undefined when it is not one. */
export function durationMs(text: unknown): number | undefined {
  if (typeof text !== 'string' || !/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(text)) return undefined;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
  let total = 0;
  for (const [, amount, name] of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(amount) * unit[name!]!;
  return total;
}

/** The longest fault delay a policy may ask for. */
const MAX_FAULT_DELAY_MS = 3_600_000;

type Fields = Record<string, unknown>;
const fieldsOf = (value: unknown): Fields | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Fields) : undefined;

/**
 * The rules a TrafficPolicy spec breaks (none: it is valid). Its shape is assumed to have
 * passed the CRD schema; anything the schema would refuse is skipped here, not reported twice.
 */
export function trafficPolicyIssues(spec: unknown): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const root = fieldsOf(spec) ?? {};
  const issue = (path: ReadonlyArray<string | number>, message: string) =>
    issues.push({ path: ['spec', ...path], message });

  const refs = Array.isArray(root.targetRefs) ? root.targetRefs : [];
  const seen = new Set<string>();
  refs.forEach((value, index) => {
    const ref = fieldsOf(value);
    if (!ref) return;
    const group = typeof ref.group === 'string' ? ref.group : '';
    const kind = String(ref.kind ?? '');
    if (!TRAFFIC_POLICY_TARGETS.some((target) => target.group === group && target.kind === kind))
      issue(
        ['targetRefs', index, 'kind'],
        `a TrafficPolicy cannot target ${group ? `${group}/` : ''}${kind} (it targets ${TRAFFIC_POLICY_TARGETS.map((t) => (t.group ? `${t.group}/${t.kind}` : t.kind)).join(', ')})`,
      );
    if (ref.sectionName !== undefined)
      issue(
        ['targetRefs', index, 'sectionName'],
        'a TrafficPolicy applies to a whole Service, ServiceImport or route: sectionName is not supported',
      );
    // A Service and the ServiceImport of its name are one service to the sidecars.
    const service = kind === 'Service' || kind === 'ServiceImport';
    const key = `${service ? 'service' : kind}/${String(ref.name)}`;
    if (seen.has(key))
      issue(
        ['targetRefs', index],
        service
          ? `targets service ${String(ref.name)} a second time (a Service and its ServiceImport are one target)`
          : `targets ${kind} ${String(ref.name)} a second time`,
      );
    seen.add(key);
  });

  const timeouts = fieldsOf(root.timeouts);
  const retries = fieldsOf(root.retries);
  const request = durationMs(timeouts?.request);
  const perTry = durationMs(retries?.perTryTimeout);
  if (request !== undefined && request > 0 && perTry !== undefined && perTry > request)
    issue(
      ['retries', 'perTryTimeout'],
      `${String(retries?.perTryTimeout)} is longer than timeouts.request (${String(timeouts?.request)}): no try could use it`,
    );
  const backoff = fieldsOf(retries?.backoff);
  const base = durationMs(backoff?.baseInterval);
  const max = durationMs(backoff?.maxInterval);
  if (base !== undefined && max !== undefined && base > max)
    issue(
      ['retries', 'backoff', 'maxInterval'],
      `${String(backoff?.maxInterval)} is shorter than baseInterval (${String(backoff?.baseInterval)})`,
    );
  if (base === 0) issue(['retries', 'backoff', 'baseInterval'], 'must be longer than 0s');

  const outliers = fieldsOf(root.outlierDetection);
  const baseEjection = durationMs(outliers?.baseEjectionTime);
  const maxEjection = durationMs(outliers?.maxEjectionTime);
  if (baseEjection !== undefined && maxEjection !== undefined && baseEjection > maxEjection)
    issue(
      ['outlierDetection', 'maxEjectionTime'],
      `${String(outliers?.maxEjectionTime)} is shorter than baseEjectionTime (${String(outliers?.baseEjectionTime)})`,
    );
  for (const field of ['interval', 'baseEjectionTime'])
    if (durationMs(outliers?.[field]) === 0) issue(['outlierDetection', field], 'must be longer than 0s');
  const breaker = fieldsOf(root.circuitBreaker);
  if (breaker?.maxPendingRequests !== undefined && breaker.maxRequests === undefined)
    issue(
      ['circuitBreaker', 'maxPendingRequests'],
      'requests wait only for a free place under maxRequests: set maxRequests too',
    );

  const faults = fieldsOf(root.faultInjection);
  if (faults) {
    if (faults.delay === undefined && faults.abort === undefined)
      issue(['faultInjection'], 'sets neither delay nor abort');
    const delay = durationMs(fieldsOf(faults.delay)?.fixedDelay);
    if (delay !== undefined && delay > MAX_FAULT_DELAY_MS)
      issue(
        ['faultInjection', 'delay', 'fixedDelay'],
        `${String(fieldsOf(faults.delay)?.fixedDelay)} is longer than 1h`,
      );
    if (Array.isArray(faults.headers))
      faults.headers.forEach((value, index) => {
        const match = fieldsOf(value);
        if (match?.type !== 'RegularExpression') return;
        try {
          new RegExp(String(match.value));
        } catch (error) {
          issue(
            ['faultInjection', 'headers', index, 'value'],
            `not a regular expression: ${(error as Error).message}`,
          );
        }
      });
    const abort = fieldsOf(faults.abort);
    if (abort) {
      const http = abort.httpStatus !== undefined;
      const grpc = abort.grpcStatus !== undefined;
      if (http === grpc)
        issue(
          ['faultInjection', 'abort'],
          http ? 'sets both httpStatus and grpcStatus: set one' : 'needs httpStatus or grpcStatus',
        );
    }
  }

  if (Array.isArray(root.clusterWeights)) {
    const clusters = new Set<string>();
    let total = 0;
    root.clusterWeights.forEach((value, index) => {
      const entry = fieldsOf(value);
      if (!entry) return;
      const cluster = String(entry.cluster);
      if (clusters.has(cluster))
        issue(['clusterWeights', index, 'cluster'], `cluster ${cluster} is weighted a second time`);
      clusters.add(cluster);
      total += typeof entry.weight === 'number' ? entry.weight : 0;
    });
    if (root.clusterWeights.length > 0 && total === 0)
      issue(['clusterWeights'], 'every weight is 0: no cluster would get traffic');
  }
  const priority = fieldsOf(root.locality)?.clusterPriority;
  if (Array.isArray(priority)) {
    const clusters = new Set<unknown>();
    priority.forEach((cluster, index) => {
      if (clusters.has(cluster))
        issue(['locality', 'clusterPriority', index], `cluster ${String(cluster)} is listed a second time`);
      clusters.add(cluster);
    });
  }
  return issues;
}

/** A field path as people write it: `spec.targetRefs[0].kind`. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((part, index) =>
      typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`,
    )
    .join('');
}

/** `spec.retries.perTryTimeout: 5s is longer than ...`: the first few issues, each with its field. */
export function describeRuleIssues(issues: readonly RuleIssue[], limit = 3): string {
  const text = issues.slice(0, limit).map((issue) => `${fieldPath(issue.path)}: ${issue.message}`);
  const more = issues.length - limit;
  return text.join('; ') + (more > 0 ? ` (and ${more} more)` : '');
}
