import type { ProxyConfig } from '@causeway/discovery';
import { memo } from './routing.ts';
import { trafficPolicyFor } from './traffic-policy.ts';

/** A TrafficPolicy's `circuitBreaker`: limits per destination service (unset: no limit). */
export interface BreakerLimits {
  readonly policy: string;
  /** App connections carried to the destination at once (L4 tunnels, framed HTTP/1.1 connections). */
  readonly maxConnections?: number;
  /** Requests waiting for a place under `maxRequests` (none wait unless set). */
  readonly maxPendingRequests?: number;
  /** Requests in flight to the destination at once. */
  readonly maxRequests?: number;
  /** Requests being retried at once. */
  readonly maxRetries?: number;
}

/** Why a circuit breaker turned a request (or connection) away: the `x-causeway-overflow` value. */
export type Overflow = 'max-connections' | 'max-pending-requests' | 'max-requests' | 'max-retries';

/** The answer header naming the limit that turned a request away. */
export const OVERFLOW_HEADER = 'x-causeway-overflow';

/** The message of a refusal by a circuit breaker (read back by `overflowOf`). */
export function overflowMessage(reason: Overflow, policy: string): string {
  return `circuit breaker: ${reason} of TrafficPolicy ${policy} reached`;
}

/** The limit a refusal's message names, when a circuit breaker refused. */
export function overflowOf(message: string): Overflow | undefined {
  return /^circuit breaker: (max-connections|max-pending-requests|max-requests|max-retries) /.exec(
    message,
  )?.[1] as Overflow | undefined;
}

/** The circuit breaker of a service (a route's policy does not set one: limits are per destination). */
export function breakerLimitsOf(
  config: ProxyConfig,
  namespace: string,
  name: string,
): BreakerLimits | undefined {
  return memo(config, `breaker ${namespace}/${name}`, () => {
    const found = trafficPolicyFor(config, namespace, name, undefined, 'circuitBreaker');
    return found && { policy: found.policy, ...(found.value as Omit<BreakerLimits, 'policy'>) };
  });
}

/** What a destination has in flight now, against its limits. */
export class Breaker {
  connections = 0;
  requests = 0;
  retries = 0;
  /** Requests waiting for a place under maxRequests, first come first served. */
  private readonly waiting: Array<(admitted: boolean) => void> = [];

  /**
   * Admits a request at once (true), or says that it would have to wait ('wait': see
   * `enter`), or which limit it runs into.
   */
  tryEnter(limits: BreakerLimits): true | Overflow | 'wait' {
    if (limits.maxRequests === undefined || this.requests < limits.maxRequests) {
      this.requests++;
      return true;
    }
    if (this.waiting.length >= (limits.maxPendingRequests ?? 0))
      return limits.maxPendingRequests === undefined ? 'max-requests' : 'max-pending-requests';
    return 'wait';
  }

  /**
   * Admits a request (true), has it wait for a place (at most `maxPendingRequests` wait),
   * or says which limit it ran into. An admitted request calls `leave()` when it is over;
   * a wait ends (false) when `signal` aborts.
   */
  async enter(limits: BreakerLimits, signal?: AbortSignal): Promise<true | Overflow | 'aborted'> {
    const now = this.tryEnter(limits);
    if (now !== 'wait') return now;
    const admitted = await new Promise<boolean>((resolve) => {
      const abort = (): void => {
        const at = this.waiting.indexOf(wake);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve(false);
      };
      const wake = (ok: boolean): void => {
        signal?.removeEventListener('abort', abort);
        resolve(ok);
      };
      if (signal?.aborted) return resolve(false);
      signal?.addEventListener('abort', abort, { once: true });
      this.waiting.push(wake);
    });
    return admitted || 'aborted';
  }

  /** An admitted request is over: its place goes to the first one waiting. */
  leave(): void {
    const next = this.waiting.shift();
    if (next) next(true);
    else this.requests--;
  }

  /** Whether nothing is in flight or waiting (the breaker may be forgotten). */
  get idle(): boolean {
    return this.connections === 0 && this.requests === 0 && this.retries === 0 && this.waiting.length === 0;
  }
}
