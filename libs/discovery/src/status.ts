import type { ClustersetService, ExportVerdict, PeerStatus } from '@causeway/catalog';
import type { NatsCondition } from '@causeway/nats';
import type { ProxyStatus } from './server.ts';

/** A Kubernetes-style condition as the status shows it. */
export interface ConditionView {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime?: string;
}

/**
 * What a federation controller reports at `/debug/catalog` on its admin port, and what
 * `causeway status` and `causeway explain` read.
 */
export interface ControllerStatus {
  readonly cluster: string;
  readonly trustDomain: string;
  readonly time: string;
  readonly natsConnected: boolean;
  /** Why NATS is (not) connected, and since when (absent from older controllers). */
  readonly nats?: NatsCondition;
  /** Per cluster, records held until that cluster's signer is known (absent from older controllers). */
  readonly waitingForSigner?: Readonly<Record<string, number>>;
  readonly catalogRunning: boolean;
  /** Where this cluster's objects come from. */
  readonly mode?: 'kubernetes' | 'files';
  readonly peers: readonly PeerStatus[];
  /** This cluster's exports as published (tombstones included). */
  readonly exports: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    readonly revision: number;
    readonly published: boolean;
    readonly tombstone: boolean;
    readonly readyEndpoints: number;
  }>;
  /** This cluster's ServiceExports, valid or not, with their conditions (absent from older controllers). */
  readonly serviceExports?: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    readonly conditions: readonly ConditionView[];
  }>;
  /** File mode: files and objects that could not be read, with where and why (absent from older controllers). */
  readonly problems?: ReadonlyArray<{
    readonly file: string;
    readonly kind?: string;
    readonly namespace?: string;
    readonly name?: string;
    readonly message: string;
    readonly kept?: boolean;
  }>;
  /** Every clusterset service: the merge verdicts and the backends proxies get. */
  readonly services: ReadonlyArray<ClustersetService & { readonly verdicts: readonly ExportVerdict[] }>;
  /** Records and signers refused, by reason. */
  readonly refusals: Readonly<Record<string, number>>;
  /**
   * How this cluster's sidecars carry each service port (L4 unless something needs L7),
   * from this cluster's routes and policies (absent from older controllers).
   */
  readonly dataPlaneModes?: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    readonly port: number;
    readonly mode: 'L4' | 'L7';
    readonly reasons: readonly string[];
  }>;
  /**
   * Every TrafficPolicy of this cluster: why its spec is refused (if it is), the generation
   * and spec in force, and its `Accepted` condition per target (absent from older controllers).
   */
  readonly trafficPolicies?: ReadonlyArray<{
    readonly namespace: string;
    readonly name: string;
    readonly invalid?: string;
    readonly inForce?: number;
    readonly spec?: unknown;
    readonly ancestors: ReadonlyArray<{
      readonly ancestorRef: {
        readonly group: string;
        readonly kind: string;
        readonly namespace: string;
        readonly name: string;
      };
      readonly conditions: readonly ConditionView[];
    }>;
  }>;
  readonly proxies: readonly ProxyStatus[];
}
