import type { ProxyConfig } from '@causeway/discovery';
import { memo, type HeaderMatch, type RequestFacts } from './routing.ts';
import { policyDurationMs, trafficPolicyFor } from './traffic-policy.ts';

/** `spec.faultInjection` of a TrafficPolicy. */
interface FaultSpec {
  readonly delay?: { readonly fixedDelay?: string; readonly percentage?: number };
  readonly abort?: {
    readonly httpStatus?: number;
    readonly grpcStatus?: number;
    readonly percentage?: number;
  };
  /** Only requests with all of these headers (Gateway API header matches). */
  readonly headers?: readonly HeaderMatch[];
}

/** A fault setting read once per config. */
export interface FaultPolicy {
  /** The policy it comes from (`namespace/name`), for logs. */
  readonly policy: string;
  readonly delayMs: number;
  /** [0, 1]: the share of matching requests delayed. */
  readonly delayShare: number;
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: number };
  readonly abortShare: number;
  /** Each header match, its test made once (a pattern that does not compile matches nothing). */
  readonly headers: ReadonlyArray<{ readonly name: string; readonly test: (value: string) => boolean }>;
}

/** What one request gets: a delay first (0: none), then possibly an abort. */
export interface Fault {
  readonly delayMs: number;
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: number };
}

/** Marks an answer that a fault injection made, so that nobody mistakes it for a real failure. */
export const INJECTED_FAULT = 'x-causeway-fault';

/**
 * The fault injection in force for a request to `namespace/name` that `route`
 * (`namespace/name`, if a mesh route matched) chose: a TrafficPolicy on the route wins over
 * one on the Service or ServiceImport.
 */
export function faultPolicyOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
  route: string | undefined,
): FaultPolicy | undefined {
  return memo(config, `faults ${namespace}/${name} ${route ?? ''}`, () => {
    const found = trafficPolicyFor(config, namespace, name, route, 'faultInjection');
    if (!found) return undefined;
    const spec = found.value as FaultSpec;
    const share = (percentage: number | undefined) => Math.min(100, Math.max(0, percentage ?? 100)) / 100;
    // `0s` (or a spelling the controller let through): no delay.
    const delayMs = policyDurationMs(spec.delay?.fixedDelay) ?? 0;
    return {
      policy: found.policy,
      delayMs,
      delayShare: delayMs > 0 ? share(spec.delay?.percentage) : 0,
      ...(spec.abort
        ? { abort: { httpStatus: spec.abort.httpStatus, grpcStatus: spec.abort.grpcStatus } }
        : {}),
      abortShare: spec.abort ? share(spec.abort.percentage) : 0,
      headers: (spec.headers ?? []).map(headerTest),
    };
  });
}

/** A header match as a test made once (names compared in lower case, as requests carry them). */
function headerTest(match: HeaderMatch): {
  readonly name: string;
  readonly test: (value: string) => boolean;
} {
  const name = match.name.toLowerCase();
  if (match.type !== 'RegularExpression') return { name, test: (value) => value === match.value };
  try {
    const pattern = new RegExp(match.value);
    return { name, test: (value) => pattern.test(value) };
  } catch {
    // The controller refuses such a policy; one that got here anyway faults nothing.
    return { name, test: () => false };
  }
}

/** The fault one request gets under `policy` (none: it goes through untouched). */
export function decideFault(
  policy: FaultPolicy | undefined,
  facts: RequestFacts,
  random: () => number = Math.random,
): Fault | undefined {
  if (!policy) return undefined;
  for (const match of policy.headers) {
    const value = facts.headers[match.name];
    const text = Array.isArray(value) ? value.join(',') : value;
    if (text === undefined || !match.test(text)) return undefined;
  }
  const delayMs = policy.delayShare > 0 && random() < policy.delayShare ? policy.delayMs : 0;
  const abort =
    policy.abort && policy.abortShare > 0 && random() < policy.abortShare ? policy.abort : undefined;
  if (delayMs === 0 && !abort) return undefined;
  return { delayMs, ...(abort ? { abort } : {}) };
}

/** The HTTP status and gRPC status of an injected abort (each from the other when only one is set). */
export function abortStatus(
  abort: NonNullable<Fault['abort']>,
  grpcFromHttp: (status: number) => number,
): {
  readonly http: number;
  readonly grpc: number;
} {
  if (abort.httpStatus !== undefined)
    return { http: abort.httpStatus, grpc: abort.grpcStatus ?? grpcFromHttp(abort.httpStatus) };
  // gRPC status only: plain HTTP callers get 503 (what a gRPC status means to HTTP varies).
  return { http: 503, grpc: abort.grpcStatus ?? 14 };
}
