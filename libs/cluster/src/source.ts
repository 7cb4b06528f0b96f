import type { KubernetesObject } from '@kubernetes/client-node';
import { GATEWAY_GROUP } from './crds/gateway-api.ts';
import { MCS_GROUP } from './crds/multicluster.ts';
import { POLICY_GROUP } from './crds/policies.ts';

/** Where each kind the controller reads lives in the Kubernetes API. */
export const SOURCE_KINDS = {
  ServiceExport: { group: MCS_GROUP, version: 'v1alpha1', plural: 'serviceexports' },
  Service: { group: '', version: 'v1', plural: 'services' },
  EndpointSlice: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' },
  Pod: { group: '', version: 'v1', plural: 'pods' },
  HTTPRoute: { group: GATEWAY_GROUP, version: 'v1', plural: 'httproutes' },
  GRPCRoute: { group: GATEWAY_GROUP, version: 'v1', plural: 'grpcroutes' },
  Gateway: { group: GATEWAY_GROUP, version: 'v1', plural: 'gateways' },
  ReferenceGrant: { group: GATEWAY_GROUP, version: 'v1beta1', plural: 'referencegrants' },
  TrafficPolicy: { group: POLICY_GROUP, version: 'v1alpha1', plural: 'trafficpolicies' },
  AuthorizationPolicy: { group: POLICY_GROUP, version: 'v1alpha1', plural: 'authorizationpolicies' },
  RateLimitPolicy: { group: POLICY_GROUP, version: 'v1alpha1', plural: 'ratelimitpolicies' },
  /** TLS Secrets only (`type: kubernetes.io/tls`): the certificates of HTTPS listeners. */
  Secret: { group: '', version: 'v1', plural: 'secrets' },
} as const;

export type SourceKind = keyof typeof SOURCE_KINDS;

/** An object as the controller reads it: always named and namespaced. */
export interface SourceObject extends KubernetesObject {
  metadata: KubernetesObject['metadata'] & { name: string; namespace: string };
  spec?: unknown;
  status?: unknown;
}

/** A change seen by a source, in the past tense; one processing loop handles them in order. */
export interface SourceEvent {
  readonly type: 'Added' | 'Updated' | 'Deleted';
  readonly kind: SourceKind;
  readonly object: SourceObject;
}

/** Something a source could not read (file mode: a file or an object in it), with the place. */
export interface SourceProblem {
  readonly file: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly message: string;
  /** The object's last valid version from the same file is still in use. */
  readonly kept?: boolean;
}

/**
 * Where a cluster's objects come from: a Kubernetes API server (list+watch) or a watched
 * folder of YAML files (file mode). The controller reads the caches, receives every change
 * as a typed event, and writes status back through the same source.
 */
export interface ClusterSource {
  readonly mode: 'kubernetes' | 'files';
  /**
   * Starts watching; resolves once every kind's first listing succeeded or failed (a
   * failed kind is retried in the background: see `synced`).
   */
  start(onEvent: (event: SourceEvent) => void): Promise<void>;
  /** Whether a kind's cache is complete (its listing has succeeded at least once). */
  synced(kind: SourceKind): boolean;
  stop(): Promise<void>;
  get<T extends SourceObject = SourceObject>(
    kind: SourceKind,
    namespace: string,
    name: string,
  ): T | undefined;
  list<T extends SourceObject = SourceObject>(kind: SourceKind, namespace?: string): readonly T[];
  /**
   * Read-modify-write of one object's status. `update` receives the current object and
   * returns its new status, or undefined when nothing needs writing. Resolves true once
   * written (or the object is gone), false after repeated conflicts (retry later).
   */
  updateStatus(
    kind: SourceKind,
    namespace: string,
    name: string,
    update: (current: SourceObject) => unknown,
  ): Promise<boolean>;
  /** What could not be read, e.g. malformed files (empty for an API server, which validates). */
  problems(): readonly SourceProblem[];
  /** Why one object could not be read, if it is malformed (file mode). */
  invalid(kind: SourceKind, namespace: string, name: string): SourceProblem | undefined;
}

/** `namespace/name` of an object. */
export const objectKey = (object: { metadata: { namespace?: string; name?: string } }): string =>
  `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;
