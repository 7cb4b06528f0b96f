import type { ProxyConfig } from '@causeway/discovery';
import { memo, type RoutedBackend } from './routing.ts';
import { MAX_LIMIT_MS, policyDurationMs as limitMs, trafficPolicyFor } from './traffic-policy.ts';

/** The timeouts of one request: the whole of it, and each try (none: no limit). */
export interface RequestTimeouts {
  readonly requestMs?: number;
  readonly perTryMs?: number;
}

const NONE: RequestTimeouts = Object.freeze({});

/**
 * The timeouts for a request to `namespace/name` that `routed` chose: the route rule's own
 * `timeouts` (`request`, `backendRequest`: the Gateway API's fields) first, then the
 * TrafficPolicy's `timeouts.request` and `retries.perTryTimeout` for what the rule leaves
 * unset. A per-try limit longer than the whole request's is the request's.
 */
export function requestTimeoutsOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
  routed: RoutedBackend,
): RequestTimeouts {
  const rule = routed.timeouts;
  return memo(
    config,
    `timeouts ${namespace}/${name} ${routed.route ?? ''} ${rule?.request ?? ''} ${rule?.backendRequest ?? ''}`,
    () => {
      const timeouts = trafficPolicyFor(config, namespace, name, routed.route, 'timeouts')?.value as
        { request?: string } | undefined;
      const retries = trafficPolicyFor(config, namespace, name, routed.route, 'retries')?.value as
        { perTryTimeout?: string } | undefined;
      const requestMs = rule?.request !== undefined ? limitMs(rule.request) : limitMs(timeouts?.request);
      let perTryMs =
        rule?.backendRequest !== undefined ? limitMs(rule.backendRequest) : limitMs(retries?.perTryTimeout);
      if (perTryMs !== undefined && requestMs !== undefined && perTryMs > requestMs) perTryMs = requestMs;
      if (requestMs === undefined && perTryMs === undefined) return NONE;
      return {
        ...(requestMs !== undefined ? { requestMs } : {}),
        ...(perTryMs !== undefined ? { perTryMs } : {}),
      };
    },
  );
}

const GRPC_UNITS_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/**
 * A `grpc-timeout` value (`100m`, `5S`: at most 8 digits and a unit) in ms; none when
 * malformed, or too long for a timer (a "no deadline" such as 30 days).
 */
export function grpcTimeoutMs(value: unknown): number | undefined {
  const match = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  const ms = match ? Number(match[1]) * GRPC_UNITS_MS[match[2]!]! : undefined;
  return ms !== undefined && ms <= MAX_LIMIT_MS ? ms : undefined;
}

/** What is left of a deadline, as a `grpc-timeout` value (whole ms, at least 1; seconds when longer). */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.floor(ms));
  return whole <= 99_999_999 ? `${whole}m` : `${Math.min(99_999_999, Math.floor(whole / 1_000))}S`;
}

/** A service's connection timeouts (TrafficPolicy `timeouts.connect`, `timeouts.idle`; none: the defaults). */
export interface ConnectionTimeouts {
  /** A new mTLS session to an endpoint (or a gateway) not up within this fails: the next one is tried. */
  readonly connectMs?: number;
  /** A carried connection (L4) or a request's stream with no bytes either way for this long is closed. */
  readonly idleMs?: number;
}

const NO_CONNECTION_TIMEOUTS: ConnectionTimeouts = Object.freeze({});

/** The connection timeouts of a TrafficPolicy on a Service or ServiceImport (once per config). */
export function connectionTimeoutsOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
): ConnectionTimeouts {
  return memo(config, `connection timeouts ${namespace}/${name}`, () => {
    const timeouts = trafficPolicyFor(config, namespace, name, undefined, 'timeouts')?.value as
      { connect?: string; idle?: string } | undefined;
    const connectMs = limitMs(timeouts?.connect);
    const idleMs = limitMs(timeouts?.idle);
    if (!connectMs && !idleMs) return NO_CONNECTION_TIMEOUTS;
    return { ...(connectMs ? { connectMs } : {}), ...(idleMs ? { idleMs } : {}) };
  });
}
