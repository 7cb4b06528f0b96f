import type { ProxyConfig } from '@causeway/discovery';
import { breakerLimitsOf, type Breaker, type BreakerLimits, type Overflow } from './circuit-breaker.ts';
import { faultPolicyOf, type Fault, type FaultPolicy } from './faults.ts';
import { outlierPolicyOf, type OutlierPolicy, type TryResult } from './outliers.ts';
import { backoffMs, retriableAnswer, retryPolicyOf, type RetryBudget, type RetryPolicy } from './retries.ts';
import {
  memo,
  targetsFor,
  type Destination,
  type RequestFacts,
  type RoutedBackend,
  type Target,
} from './routing.ts';
import type { PolicyLabels, PolicyMetrics } from './telemetry.ts';
import {
  connectionTimeoutsOf,
  grpcTimeoutMs,
  requestTimeoutsOf,
  type ConnectionTimeouts,
  type RequestTimeouts,
} from './timeouts.ts';

/** Methods that may be sent again after a failure (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What a request's policy needs of the sidecar's outbound side (its shared, per-destination state). */
export interface PolicyHost {
  readonly policyMetrics: PolicyMetrics;
  retryBudget(service: string): RetryBudget;
  breaker(service: string): Breaker;
  noteTry(
    target: Target,
    group: readonly Target[],
    policy: OutlierPolicy,
    result: TryResult,
    service: string,
  ): void;
  policyLabels(service: string, policy: string): PolicyLabels;
  /** The fault `faults` injects into one try (drawn anew each time), counted once drawn. */
  drawFault(
    faults: FaultPolicy,
    facts: RequestFacts,
    service: string,
  ): (Fault & { readonly policy: string }) | undefined;
}

/** Everything of the TrafficPolicies a request to one destination, route and backend is under (once per config). */
export interface PolicyBundle {
  readonly retry: RetryPolicy | undefined;
  readonly faults: FaultPolicy | undefined;
  readonly limits: RequestTimeouts;
  readonly outliers: OutlierPolicy | undefined;
  /** The backend's targets (for outlier detection's share), when outlier detection is on. */
  readonly group: readonly Target[] | undefined;
  readonly breaker: BreakerLimits | undefined;
  readonly connection: ConnectionTimeouts;
  /**
   * Whether any of it works per request (faults, retries, time limits, outlier detection on
   * answers, a request or retry limit): such requests are tried one by one by the sidecar.
   */
  readonly perRequest: boolean;
}

/** The policies of requests to `destination` that `routed` chose (see `PolicyBundle`). */
export function policyBundleOf(
  config: ProxyConfig,
  destination: Destination,
  routed: RoutedBackend,
): PolicyBundle {
  const { namespace, name } = destination.service;
  const rule = routed.timeouts;
  return memo(
    config,
    `policy ${namespace}/${name} ${routed.route ?? ''} ${routed.namespace}/${routed.name}:${routed.port} ${destination.localOnly} ${rule?.request ?? ''} ${rule?.backendRequest ?? ''}`,
    () => {
      const retry = retryPolicyOf(config, namespace, name, routed.route);
      const faults = faultPolicyOf(config, namespace, name, routed.route);
      const limits = requestTimeoutsOf(config, namespace, name, routed);
      // The backend's own limits and health (the route's backend: its endpoints are the targets).
      const outliers = outlierPolicyOf(config, routed.namespace, routed.name);
      const breaker = breakerLimitsOf(config, routed.namespace, routed.name);
      return {
        retry,
        faults,
        limits,
        outliers,
        group: outliers && targetsFor(config, routed, destination.localOnly).all,
        breaker,
        connection: connectionTimeoutsOf(config, routed.namespace, routed.name),
        perRequest:
          retry !== undefined ||
          faults !== undefined ||
          limits.requestMs !== undefined ||
          limits.perTryMs !== undefined ||
          (outliers !== undefined &&
            (outliers.consecutive5xx !== undefined || outliers.consecutiveGateway !== undefined)) ||
          (breaker !== undefined && (breaker.maxRequests !== undefined || breaker.maxRetries !== undefined)),
      };
    },
  );
}

/**
 * The TrafficPolicy of one request, whichever path serves it (per request over HTTP/2, or
 * framed HTTP/1.1 in a tunnel): its faults, its retries (budget and circuit breaker
 * included), its time limits, its place under the circuit breaker, and what its tries tell
 * outlier detection. `close()` when the request is over.
 */
export class RequestPolicy {
  readonly retry: RetryPolicy | undefined;
  /** Whether this request may be tried again at all (its method, or gRPC). */
  private readonly mayRetry: boolean;
  private readonly budget: RetryBudget | undefined;
  /** The whole request's deadline (`performance.now()` ms), when it has one. */
  readonly deadline: number | undefined;
  private readonly expiryTimer: NodeJS.Timeout | undefined;
  /** Made when first asked for (`expirySignal`): most requests never need one. */
  private expiryController: AbortController | undefined;
  private expiryListener: (() => void) | undefined;
  /** The request's time is up. */
  expired = false;
  private readonly breakerState: Breaker | undefined;
  private admitted = false;
  private retrying = false;
  private closed = false;
  /** Aborted when the request is over while it waits for a place (made only for a wait). */
  private over: AbortController | undefined;
  /** Retries made so far. */
  retried = 0;

  constructor(
    private readonly host: PolicyHost,
    /** What the request is under (`policyBundleOf`). */
    private readonly bundle: PolicyBundle,
    private readonly facts: RequestFacts,
    /** The destination's name in metrics. */
    readonly service: string,
    /** Whether the request (its body so far) can still be sent again. */
    private readonly replayable: () => boolean,
  ) {
    this.retry = bundle.retry;
    this.budget = this.retry && host.retryBudget(service);
    this.budget?.request();
    // gRPC calls are retried on their status whatever their method (as gRPC's own retries are).
    this.mayRetry =
      this.retry !== undefined &&
      (this.retry.allowNonIdempotent || facts.grpc || IDEMPOTENT.has(facts.method));
    // Time limits: the route's or policy's, and a gRPC caller's own deadline, never extended.
    // Without a limit of its own the sidecar leaves a gRPC deadline to the caller and the
    // server (passed on as it came); with one, the earlier of the two is enforced here.
    const { requestMs: limitMs } = bundle.limits;
    const callerMs = facts.grpc ? grpcTimeoutMs(facts.headers['grpc-timeout']) : undefined;
    const requestMs = limitMs === undefined ? undefined : Math.min(limitMs, callerMs ?? Infinity);
    if (requestMs !== undefined) {
      this.deadline = performance.now() + requestMs;
      this.expiryTimer = setTimeout(() => this.expire(), requestMs);
    }
    this.breakerState = bundle.breaker && host.breaker(service);
  }

  get breakerLimits(): BreakerLimits | undefined {
    return this.bundle.breaker;
  }

  get connection(): ConnectionTimeouts {
    return this.bundle.connection;
  }

  private expire(): void {
    this.expired = true;
    this.expiryController?.abort();
    this.expiryListener?.();
  }

  /** Aborted when the request's time is up (none: it has no deadline). */
  get expirySignal(): AbortSignal | undefined {
    if (this.deadline === undefined) return undefined;
    if (!this.expiryController) {
      this.expiryController = new AbortController();
      if (this.expired) this.expiryController.abort();
    }
    return this.expiryController.signal;
  }

  /** Runs `listener` when the request's time is up (one listener). */
  onExpiry(listener: () => void): void {
    this.expiryListener = listener;
  }

  /**
   * A place under the circuit breaker's `maxRequests` (true), at once or after a wait
   * (`maxPendingRequests`); or the limit the request ran into (counted), 'timed-out', or
   * 'gone' (the request was closed while it waited). Synchronous unless it has to wait.
   */
  admit(): true | Overflow | Promise<true | Overflow | 'timed-out' | 'gone'> {
    if (!this.breakerState) return true;
    const now = this.breakerState.tryEnter(this.bundle.breaker!);
    if (now === true) {
      this.admitted = true;
      return true;
    }
    if (now !== 'wait') {
      this.overflowed(now);
      return now;
    }
    return this.waitForPlace();
  }

  private async waitForPlace(): Promise<true | Overflow | 'timed-out' | 'gone'> {
    const over = (this.over = new AbortController());
    if (this.closed) over.abort();
    const expiry = this.expirySignal;
    const signal = expiry ? AbortSignal.any([expiry, over.signal]) : over.signal;
    const entered = await this.breakerState!.enter(this.bundle.breaker!, signal);
    if (entered === 'aborted') return over.signal.aborted ? 'gone' : 'timed-out';
    if (entered !== true) {
      this.overflowed(entered);
      return entered;
    }
    if (this.closed) {
      // Closed as the place came: it goes to the next one.
      this.breakerState!.leave();
      return 'gone';
    }
    this.admitted = true;
    return true;
  }

  private overflowed(reason: Overflow): void {
    this.host.policyMetrics.overflowed({
      ...this.host.policyLabels(this.service, this.bundle.breaker!.policy),
      reason,
    });
  }

  /** The fault this try gets (drawn and counted), if a policy injects one. */
  fault(): (Fault & { readonly policy: string }) | undefined {
    if (!this.bundle.faults) return undefined;
    return this.host.drawFault(this.bundle.faults, this.facts, this.service);
  }

  /** One try's result on `target`, for outlier detection. */
  note(target: Target, result: TryResult): void {
    const { outliers, group } = this.bundle;
    if (outliers) this.host.noteTry(target, group!, outliers, result, this.service);
  }

  /**
   * Whether an answer (or a failure before any) is retried, taking a retry from the budget
   * and a place under `maxRetries`; false: it goes to the app.
   */
  retryAnswer(status: number, grpcStatus: string, failure?: 'connect-failure' | 'reset'): boolean {
    const retry = this.retry;
    if (this.closed || !retry || !this.mayRetry || this.retried >= retry.retries || !this.replayable())
      return false;
    if (failure ? !retry.retryOn.has(failure) : !retriableAnswer(retry, status, grpcStatus)) return false;
    // Retries in flight to the destination: over the circuit breaker's limit, none is made.
    const maxRetries = this.bundle.breaker?.maxRetries;
    if (!this.retrying && maxRetries !== undefined && this.breakerState!.retries >= maxRetries) {
      this.overflowed('max-retries');
      return false;
    }
    if (!this.budget!.withdraw(retry.budgetShare, retry.minPerSecond)) {
      this.host.policyMetrics.retryBudgetExhausted(this.host.policyLabels(this.service, retry.policy));
      return false;
    }
    if (this.breakerState && !this.retrying) {
      this.retrying = true;
      this.breakerState.retries++;
    }
    return true;
  }

  /** A retry granted by `retryAnswer` is made: counted, then its backoff waited. */
  nextTry(reason: string): Promise<void> {
    this.retried++;
    this.host.policyMetrics.retried({
      ...this.host.policyLabels(this.service, this.retry!.policy),
      reason,
    });
    return this.pause(backoffMs(this.retry!, this.retried));
  }

  /** Waits `ms`, but never past the deadline (the request then answers 504 on time). */
  pause(ms: number): Promise<void> {
    const left = this.deadline === undefined ? ms : Math.max(0, this.deadline - performance.now());
    return new Promise((resolve) => setTimeout(resolve, Math.min(ms, left)));
  }

  /** A try's own limit, when it ends before the request's deadline (which the request's timer enforces). */
  perTryMs(): number | undefined {
    const { perTryMs } = this.bundle.limits;
    if (perTryMs === undefined) return undefined;
    if (this.deadline !== undefined && this.deadline - performance.now() <= perTryMs) return undefined;
    return perTryMs;
  }

  /** A request (or its last try) ran out of time: counted. */
  timedOut(timeout: 'request' | 'per-try'): void {
    const { sourceCluster, sourceWorkload, destinationService } = this.host.policyLabels(this.service, '');
    this.host.policyMetrics.timedOut({ sourceCluster, sourceWorkload, destinationService, timeout });
  }

  /**
   * The request is over (answered, or its caller gone): its timer stops, a wait for a place
   * ends, its places under the circuit breaker are given back.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiryTimer);
    this.expiryListener = undefined;
    this.over?.abort();
    if (this.admitted) {
      this.admitted = false;
      this.breakerState!.leave();
    }
    if (this.retrying) {
      this.retrying = false;
      this.breakerState!.retries--;
    }
  }
}
