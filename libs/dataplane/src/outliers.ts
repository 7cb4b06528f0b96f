import type { ProxyConfig } from '@causeway/discovery';
import { memo } from './routing.ts';
import { policyDurationMs, trafficPolicyFor } from './traffic-policy.ts';

/** A TrafficPolicy's `outlierDetection`, with its defaults filled in. */
export interface OutlierPolicy {
  readonly policy: string;
  /** Consecutive 5xx answers (gRPC: UNKNOWN, INTERNAL, DATA_LOSS, UNAVAILABLE) that eject; none: not counted. */
  readonly consecutive5xx?: number;
  /** Consecutive 502, 503 and 504 answers (gRPC: UNAVAILABLE), connect failures, resets and tries out of time that eject. */
  readonly consecutiveGateway?: number;
  /** Consecutive connect failures (no connection, no tunnel) that eject. */
  readonly consecutiveLocal?: number;
  /** How long an endpoint must stay in before one of its past ejections is forgotten. */
  readonly intervalMs: number;
  /** The first ejection's length; the n-th (of those remembered) lasts n times as long... */
  readonly baseEjectionMs: number;
  /** ...up to this. */
  readonly maxEjectionMs: number;
  /** At most this share of a destination's endpoints is ejected at once (at least one may be). */
  readonly maxEjectionPercent: number;
}

const DEFAULT_CONSECUTIVE = 5;
const DEFAULT_INTERVAL_MS = 10_000;
const DEFAULT_BASE_EJECTION_MS = 30_000;
const DEFAULT_MAX_EJECTION_MS = 300_000;
const DEFAULT_MAX_EJECTION_PERCENT = 10;

interface OutlierSpec {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  consecutiveLocalOriginFailures?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionTime?: string;
  maxEjectionPercent?: number;
}

/**
 * The outlier detection a TrafficPolicy on a Service or ServiceImport asks for (once per
 * config). A policy that names no counter counts 5xx answers and connect failures (5 each).
 */
export function outlierPolicyOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
): OutlierPolicy | undefined {
  return memo(config, `outliers ${namespace}/${name}`, () => {
    const found = trafficPolicyFor(config, namespace, name, undefined, 'outlierDetection');
    if (!found) return undefined;
    const spec = found.value as OutlierSpec;
    const none =
      spec.consecutive5xxErrors === undefined &&
      spec.consecutiveGatewayErrors === undefined &&
      spec.consecutiveLocalOriginFailures === undefined;
    const base = policyDurationMs(spec.baseEjectionTime) || DEFAULT_BASE_EJECTION_MS;
    return {
      policy: found.policy,
      consecutive5xx: none ? DEFAULT_CONSECUTIVE : spec.consecutive5xxErrors,
      consecutiveGateway: spec.consecutiveGatewayErrors,
      consecutiveLocal: none ? DEFAULT_CONSECUTIVE : spec.consecutiveLocalOriginFailures,
      intervalMs: policyDurationMs(spec.interval) || DEFAULT_INTERVAL_MS,
      baseEjectionMs: base,
      maxEjectionMs: Math.max(base, policyDurationMs(spec.maxEjectionTime) || DEFAULT_MAX_EJECTION_MS),
      maxEjectionPercent: spec.maxEjectionPercent ?? DEFAULT_MAX_EJECTION_PERCENT,
    };
  });
}

/** What ejected an endpoint (the `reason` label of `causeway_outlier_ejections_total`). */
export type EjectionCause = 'consecutive-5xx' | 'consecutive-gateway-errors' | 'consecutive-local-failures';

/**
 * What one try on an endpoint came to, for outlier detection: an answer (a success, a server
 * error, a gateway error), no answer (a reset, a try out of time), no connection, or a
 * connection (a tunnel opened: that ends a run of connect failures; its answers count apart).
 */
export type TryResult = 'success' | '5xx' | 'gateway' | 'reset' | 'local' | 'connected';

/** gRPC statuses that count as a server error, and the one that counts as a gateway error. */
const GRPC_SERVER_ERRORS = new Set(['2', '13', '15']);
const GRPC_UNAVAILABLE = '14';

/** How an answer counts: 502-504 (gRPC UNAVAILABLE) are gateway errors, other 5xx server errors. */
export function resultOfAnswer(status: number, grpcStatus: string): TryResult {
  if (status === 502 || status === 503 || status === 504 || grpcStatus === GRPC_UNAVAILABLE) return 'gateway';
  if (status >= 500 || GRPC_SERVER_ERRORS.has(grpcStatus)) return '5xx';
  return 'success';
}

interface Health {
  fiveXx: number;
  gateway: number;
  local: number;
  /** Ejections remembered (each makes the next one longer); forgotten one per interval in. */
  ejections: number;
  /** Ejected until then (epoch ms); 0: never ejected. */
  until: number;
  /** Why the last ejection happened, for `/debug/outliers`. */
  reason: string;
  service: string;
  cluster: string;
  /** The endpoint's address (a local endpoint) or its cluster's gateway address. */
  address: string;
}

/** An endpoint ejected now, as `/debug/outliers` and `causeway explain` show it. */
export interface Ejection {
  readonly service: string;
  readonly cluster: string;
  readonly endpoint: string;
  readonly reason: string;
  readonly ejections: number;
  readonly untilMs: number;
}

/**
 * Passive health checking per endpoint (a local endpoint, or a remote cluster's east-west
 * gateway, which stands for its cluster): consecutive failures of one kind eject it for a
 * time that grows with each ejection, within a share of its destination's endpoints.
 */
export class OutlierDetector {
  private readonly health = new Map<string, Health>();

  /**
   * Notes one try's result on `target` (one of `group`, the destination's endpoints). Says
   * for how long (ms) the endpoint is ejected now, and why, when this result ejected it.
   */
  record(
    target: { readonly key: string; readonly cluster: string; readonly host: string; readonly port: number },
    group: readonly { readonly key: string }[],
    policy: OutlierPolicy,
    result: TryResult,
    service: string,
    now = Date.now(),
  ): { readonly ms: number; readonly cause: EjectionCause } | undefined {
    let health = this.health.get(target.key);
    if (result === 'success') {
      if (health) health.fiveXx = health.gateway = health.local = 0;
      return undefined;
    }
    // A connection (a tunnel) was had: that ends a run of connect failures, nothing more.
    if (result === 'connected') {
      if (health) health.local = 0;
      return undefined;
    }
    if (!health) {
      health = {
        fiveXx: 0,
        gateway: 0,
        local: 0,
        ejections: 0,
        until: 0,
        reason: '',
        service,
        cluster: target.cluster,
        address: `${target.host}:${target.port}`,
      };
      this.health.set(target.key, health);
    }
    if (health.until > now) return undefined;
    let cause: EjectionCause | undefined;
    if (result === 'local') {
      health.local++;
      // A connect failure is a gateway error too (no answer came).
      health.gateway++;
      if (policy.consecutiveLocal !== undefined && health.local >= policy.consecutiveLocal)
        cause = 'consecutive-local-failures';
    } else if (result === 'reset') {
      // No answer: a gateway error, not a 5xx answer.
      health.local = 0;
      health.gateway++;
    } else {
      health.local = 0;
      health.fiveXx++;
      if (result === 'gateway') health.gateway++;
      else health.gateway = 0;
      if (policy.consecutive5xx !== undefined && health.fiveXx >= policy.consecutive5xx)
        cause = 'consecutive-5xx';
    }
    if (
      cause === undefined &&
      policy.consecutiveGateway !== undefined &&
      health.gateway >= policy.consecutiveGateway
    )
      cause = 'consecutive-gateway-errors';
    if (cause === undefined) return undefined;
    // The share of the destination's endpoints that may be out at once (at least one).
    const allowed = Math.max(1, Math.floor((group.length * policy.maxEjectionPercent) / 100));
    const out = group.filter((member) => (this.health.get(member.key)?.until ?? 0) > now).length;
    if (policy.maxEjectionPercent === 0 || out >= allowed) return undefined;
    // Past ejections fade: one is forgotten for every interval the endpoint has stayed in.
    if (health.until > 0)
      health.ejections = Math.max(0, health.ejections - Math.floor((now - health.until) / policy.intervalMs));
    health.ejections++;
    const ms = Math.min(policy.baseEjectionMs * health.ejections, policy.maxEjectionMs);
    health.until = now + ms;
    health.reason = cause;
    health.service = service;
    health.fiveXx = health.gateway = health.local = 0;
    return { ms, cause };
  }

  /** The endpoints ejected now. */
  ejected(now = Date.now()): Ejection[] {
    const list: Ejection[] = [];
    for (const health of this.health.values())
      if (health.until > now)
        list.push({
          service: health.service,
          cluster: health.cluster,
          endpoint: health.address,
          reason: health.reason,
          ejections: health.ejections,
          untilMs: health.until,
        });
    return list;
  }

  /** Forgets endpoints no longer in the config (and not ejected now). */
  retain(keys: ReadonlySet<string>, now = Date.now()): void {
    for (const [key, health] of this.health)
      if (!keys.has(key) && health.until <= now) this.health.delete(key);
  }
}
