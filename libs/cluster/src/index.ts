/**
 * The cluster a controller reads and writes: the CRDs it serves, its objects through one
 * `ClusterSource` interface (an API server's informers, or a folder of YAML in file mode),
 * and the writer of ServiceImports and their EndpointSlices into it.
 */
export { GATEWAY_GROUP, MCS_GROUP, renderCrdFiles } from './crds/index.ts';
export { FileSource } from './file-source.ts';
export {
  describeRuleIssues,
  durationMs,
  TRAFFIC_POLICY_TARGETS,
  trafficPolicyIssues,
  type RuleIssue,
} from './crds/traffic-policy-rules.ts';
export { ImportWriter, importedSliceName, withTransitionTimes } from './import-writer.ts';
export { KubernetesSource } from './kubernetes-source.ts';
export type { ClusterSource, SourceEvent, SourceKind, SourceObject, SourceProblem } from './source.ts';
