import type { ProxyConfig } from '@causeway/discovery';
import { memo } from './routing.ts';
import { policyDurationMs, trafficPolicyFor } from './traffic-policy.ts';

/** `spec.retries` of a TrafficPolicy. */
interface RetriesSpec {
  readonly attempts?: number;
  readonly retryOn?: readonly string[];
  readonly retriableStatusCodes?: readonly number[];
  readonly allowNonIdempotent?: boolean;
  readonly backoff?: { readonly baseInterval?: string; readonly maxInterval?: string };
  readonly budget?: { readonly percent?: number; readonly minRetriesPerSecond?: number };
}

/** A retry setting read once per config. */
export interface RetryPolicy {
  /** The policy it comes from (`namespace/name`), for metrics. */
  readonly policy: string;
  /** Tries after the first. */
  readonly retries: number;
  readonly retryOn: ReadonlySet<string>;
  readonly statusCodes: ReadonlySet<number>;
  readonly allowNonIdempotent: boolean;
  readonly baseMs: number;
  readonly maxMs: number;
  /** Retries may add this share of the requests (0.2: 20%)... */
  readonly budgetShare: number;
  /** ...plus this many per second. */
  readonly minPerSecond: number;
}

/** What retries are made on when a policy sets `retries` without `retryOn`. */
const DEFAULT_RETRY_ON = ['connect-failure', 'reset', 'gateway-error', 'unavailable'];
/** Tries after the first when `attempts` is not set. */
const DEFAULT_RETRIES = 2;

/** The retry marker the app behind the server's sidecar sees: 1 for the first try. */
export const ATTEMPT_HEADER = 'x-causeway-attempt';

const ms = (text: string | undefined, fallback: number): number => policyDurationMs(text) ?? fallback;

/**
 * The retries in force for a request to `namespace/name` that `route` chose (a policy on the
 * route wins over one on the Service or ServiceImport); none: no status is retried.
 */
export function retryPolicyOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
  route: string | undefined,
): RetryPolicy | undefined {
  return memo(config, `retries ${namespace}/${name} ${route ?? ''}`, () => {
    const found = trafficPolicyFor(config, namespace, name, route, 'retries');
    if (!found) return undefined;
    const spec = found.value as RetriesSpec;
    const baseMs = ms(spec.backoff?.baseInterval, 25);
    return {
      policy: found.policy,
      retries: Math.max(0, spec.attempts ?? DEFAULT_RETRIES),
      retryOn: new Set(spec.retryOn ?? DEFAULT_RETRY_ON),
      statusCodes: new Set(spec.retriableStatusCodes ?? []),
      allowNonIdempotent: spec.allowNonIdempotent === true,
      baseMs,
      maxMs: Math.max(baseMs, ms(spec.backoff?.maxInterval, baseMs * 10)),
      budgetShare: (spec.budget?.percent ?? 20) / 100,
      minPerSecond: spec.budget?.minRetriesPerSecond ?? 10,
    };
  });
}

/**
 * Whether an answer is one `policy` retries: by HTTP status (`5xx`, `gateway-error`,
 * `retriable-4xx` for 409, the listed codes) or by gRPC status (`unavailable`, `cancelled`,
 * `deadline-exceeded`, `resource-exhausted`).
 */
export function retriableAnswer(policy: RetryPolicy, status: number, grpcStatus: string): boolean {
  const on = policy.retryOn;
  if (on.has('5xx') && status >= 500 && status <= 599) return true;
  if (on.has('gateway-error') && (status === 502 || status === 503 || status === 504)) return true;
  if (on.has('retriable-4xx') && status === 409) return true;
  if (policy.statusCodes.has(status)) return true;
  switch (grpcStatus) {
    case '14':
      return on.has('unavailable');
    case '1':
      return on.has('cancelled');
    case '4':
      return on.has('deadline-exceeded');
    case '8':
      return on.has('resource-exhausted');
    default:
      return false;
  }
}

/** How long to wait before retry `n` (1 for the first): exponential, with full jitter. */
export function backoffMs(policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n - 1, 20));
  return Math.round(random() * ceiling);
}

/** Seconds a budget looks back over. */
const BUDGET_WINDOW_S = 10;

/**
 * A retry budget per destination (Linkerd's model): over the last 10 s, retries may add at
 * most `share` of the requests plus `minPerSecond` each second, so that when everything
 * fails, retries cannot multiply the load on a service that is already down.
 */
export class RetryBudget {
  private readonly requests = new Float64Array(BUDGET_WINDOW_S);
  private readonly retries = new Float64Array(BUDGET_WINDOW_S);
  private second = 0;

  constructor(private readonly now: () => number = () => Math.floor(performance.now() / 1000)) {}

  /** A request (its first try) was sent. */
  request(): void {
    this.requests[this.roll()]!++;
  }

  /** Takes one retry from the budget; false when it is spent. */
  withdraw(share: number, minPerSecond: number): boolean {
    const slot = this.roll();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUDGET_WINDOW_S; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    if (retries + 1 > share * requests + minPerSecond * BUDGET_WINDOW_S) return false;
    this.retries[slot]!++;
    return true;
  }

  /** The slot of this second, the seconds since the last call cleared. */
  private roll(): number {
    const now = this.now();
    const gap = Math.min(now - this.second, BUDGET_WINDOW_S);
    for (let i = 1; i <= gap; i++) {
      const slot = (this.second + i) % BUDGET_WINDOW_S;
      this.requests[slot] = 0;
      this.retries[slot] = 0;
    }
    if (gap > 0) this.second = now;
    return now % BUDGET_WINDOW_S;
  }
}
