import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Redis } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CompiledRoute, ProxyConfig } from '@causeway/discovery';
import { memo } from '@causeway/dataplane';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const UNIT_MS = { second: 1_000, minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;

/** One descriptor of a limit: what part of a request makes its bucket. */
interface Descriptor {
  readonly key: 'remoteAddress' | 'header' | 'path' | 'method' | 'sourceCluster' | 'sourcePrincipal';
  readonly header?: string;
  /** With a value: the limit applies only to requests that have it. */
  readonly value?: string;
}

/** One limit of a RateLimitPolicy, compiled. */
export interface Limit {
  /** `<namespace>/<policy>` */
  readonly policy: string;
  readonly name: string;
  readonly requests: number;
  readonly periodMs: number;
  readonly descriptors: readonly Descriptor[];
  readonly failClosed: boolean;
}

/** What a limit reads from a request. */
export interface LimitedRequest {
  readonly remoteAddress: string;
  readonly method: string;
  /** The normalized path, without the query. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

/** The outcome for one request under every limit that applies to it. */
export interface RateDecision {
  /** `ok`, `limited` (429), or `unavailable` (a FailClosed limit while Redis is out: 503). */
  readonly verdict: 'ok' | 'limited' | 'unavailable';
  /** `RateLimit-Policy` and `RateLimit` (and `Retry-After` when limited). */
  readonly headers: Record<string, string>;
}

interface SpecView {
  targetRefs?: Array<{ group?: string; kind?: string; name?: string }>;
  limits?: Array<{
    name?: string;
    requests?: number;
    unit?: keyof typeof UNIT_MS;
    descriptors?: Descriptor[];
  }>;
  failureMode?: string;
}

/**
 * The limits of the RateLimitPolicies that target a Gateway (every request it routes) or an
 * HTTPRoute (the requests it matches), each from the target's namespace. A policy the
 * schema would refuse is skipped whole.
 */
export function limitsFor(config: ProxyConfig, gateway: string, route: CompiledRoute): readonly Limit[] {
  return memo(config, `rate-limits ${gateway} ${route.kind}/${route.namespace}/${route.name}`, () => {
    const [gatewayNamespace, gatewayName] = gateway.split('/') as [string, string];
    const out: Limit[] = [];
    for (const policy of config.policies) {
      if (policy.kind !== 'RateLimitPolicy') continue;
      const spec = policy.spec as SpecView;
      const targets = (spec.targetRefs ?? []).some(
        (ref) =>
          ref.group === GATEWAY_GROUP &&
          ((ref.kind === 'Gateway' && policy.namespace === gatewayNamespace && ref.name === gatewayName) ||
            (ref.kind === route.kind && policy.namespace === route.namespace && ref.name === route.name)),
      );
      if (!targets) continue;
      const limits: Limit[] = [];
      let valid = true;
      for (const limit of spec.limits ?? []) {
        const periodMs = limit.unit ? UNIT_MS[limit.unit] : undefined;
        if (!limit.name || !Number.isInteger(limit.requests) || limit.requests! < 1 || !periodMs)
          valid = false;
        else
          limits.push({
            policy: `${policy.namespace}/${policy.name}`,
            name: limit.name,
            requests: limit.requests!,
            periodMs,
            descriptors: limit.descriptors ?? [],
            failClosed: spec.failureMode === 'FailClosed',
          });
      }
      if (valid) out.push(...limits);
    }
    return out;
  });
}

/** The bucket of a request under a limit; none when the limit does not apply to it. */
function bucketOf(limit: Limit, request: LimitedRequest): string | undefined {
  const parts: string[] = [];
  for (const d of limit.descriptors) {
    let value: string | undefined;
    if (d.key === 'remoteAddress') value = request.remoteAddress;
    else if (d.key === 'method') value = request.method;
    else if (d.key === 'path') value = request.path;
    else if (d.key === 'header' && d.header) {
      const raw = request.headers[d.header.toLowerCase()];
      value = Array.isArray(raw) ? raw.join(',') : raw;
    }
    // (Mesh-only descriptors, and a header the request lacks: the limit is not for it.)
    if (value === undefined) return undefined;
    if (d.value !== undefined && d.value !== value) return undefined;
    parts.push(value);
  }
  const digest = createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 22);
  return `causeway:rl:${limit.policy}:${limit.name}:${digest}`;
}

/**
 * GCRA over every bucket of one decision, atomically: a request is let through only if
 * every bucket has room, and then each bucket is charged. Times are the server's (one clock
 * for every replica), in whole microseconds, so no rounding ever takes a request from a
 * burst. ARGV per key: emission interval and period (microseconds). Returns limited (0/1),
 * the wait, then per key what remains and when the bucket is full again (microseconds).
 */
const GCRA = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limited = 0
local wait = 0
local tats = {}
local remaining = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local room = now - (tat + interval - period)
  if room < 0 then
    limited = 1
    if -room > wait then wait = -room end
    remaining[i] = 0
    tats[i] = tat
  else
    remaining[i] = math.floor(room / interval)
    tats[i] = tat + interval
  end
end
if limited == 0 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1)
  end
end
local out = { limited, wait }
for i = 1, #KEYS do
  out[#out + 1] = remaining[i]
  out[#out + 1] = tats[i] - now
end
return out
`;

/**
 * A limit's emission interval in whole microseconds, rounded down: `requests` intervals
 * always fit in the period, so the burst is never short by one. (At least one: a limit of
 * more than a million a second counts as a million.)
 */
const intervalUs = (limit: Limit): number =>
  Math.max(1, Math.floor((limit.periodMs * 1000) / limit.requests));

/** After Redis failed or timed out, decisions stay local this long before Redis is tried again. */
const REDIS_BACKOFF_MS = 1_000;

/** Buckets kept by the local limiter at most (the oldest go first). */
const LOCAL_BUCKETS = 100_000;

export interface RateLimiterOptions {
  /** `redis://host:port`; none: every decision is local to this replica. */
  readonly redisUrl?: string;
  /** How long a connection attempt may take. */
  readonly connectTimeoutMs?: number;
  /** How long one decision may wait for Redis before the local limiter decides. */
  readonly commandTimeoutMs?: number;
  readonly registry?: Registry;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

type GcraClient = Redis & {
  causewayGcra(keyCount: number, ...args: Array<string | number>): Promise<number[]>;
};

/**
 * Global rate limits shared by every gateway replica through Redis: one atomic GCRA script
 * per decision. While Redis is unreachable (or slow past `commandTimeoutMs`), a local
 * GCRA limiter with the same limits decides (each replica then enforces each limit on its
 * own), or, for a FailClosed policy, the request is refused; a Redis that comes back is
 * used again as soon as the client has reconnected.
 */
export class RateLimiter {
  private readonly redis: GcraClient | undefined;
  private readonly local = new Map<string, number>();
  private readonly decisions: Counter<'policy' | 'limit' | 'decision' | 'backend'>;
  private readonly fallbacks: Counter<'reason'>;
  /** Until when Redis is not asked (it failed or timed out lately). */
  private redisBackoffUntil = 0;

  constructor(private readonly options: RateLimiterOptions) {
    const registers = options.registry ? [options.registry] : [];
    this.decisions = new Counter({
      name: 'causeway_ratelimit_decisions_total',
      help: 'Rate limit decisions per limit: allowed or limited, by Redis (global) or by the local limiter.',
      labelNames: ['policy', 'limit', 'decision', 'backend'],
      registers,
    });
    this.fallbacks = new Counter({
      name: 'causeway_ratelimit_fallback_total',
      help: 'Decisions the local limiter (or FailClosed) made because Redis could not: not connected, or an error or timeout.',
      labelNames: ['reason'],
      registers,
    });
    if (!options.redisUrl) return;
    const redis = new Redis(options.redisUrl, {
      // Never queue a decision behind a connection attempt: without Redis, decide locally now.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.connectTimeoutMs ?? 500,
      commandTimeout: options.commandTimeoutMs ?? 250,
      // A Redis that stops answering (frozen, or its packets dropped) is dropped and dialled
      // again, not waited on for as long as TCP would.
      socketTimeout: Math.max(1_000, 4 * (options.commandTimeoutMs ?? 250)),
      keepAlive: 10_000,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
      lazyConnect: false,
    }) as GcraClient;
    redis.defineCommand('causewayGcra', { lua: GCRA });
    redis.on('error', () => undefined);
    redis.on('ready', () => options.log?.('info', 'rate limits: Redis connected'));
    redis.on('close', () => options.log?.('warn', 'rate limits: Redis connection lost (deciding locally)'));
    this.redis = redis;
    new Gauge({
      name: 'causeway_ratelimit_redis_connected',
      help: '1 while the rate limiter has a ready Redis connection.',
      registers,
      collect(this: Gauge) {
        this.set(redis.status === 'ready' ? 1 : 0);
      },
    });
  }

  /** Decides one request under `limits` (those that apply to it). */
  async check(limits: readonly Limit[], request: LimitedRequest): Promise<RateDecision> {
    const applied: Array<{ limit: Limit; key: string }> = [];
    for (const limit of limits) {
      const key = bucketOf(limit, request);
      if (key) applied.push({ limit, key });
    }
    if (applied.length === 0) return { verdict: 'ok', headers: {} };
    let answer: { limited: boolean; waitMs: number; remaining: number[]; resetMs: number[] } | undefined;
    let backend = 'redis';
    if (this.redis && this.redis.status === 'ready' && Date.now() >= this.redisBackoffUntil) {
      try {
        const reply = await this.redis.causewayGcra(
          applied.length,
          ...applied.map((a) => a.key),
          ...applied.flatMap((a) => [intervalUs(a.limit), a.limit.periodMs * 1000]),
        );
        answer = {
          limited: reply[0] === 1,
          waitMs: Number(reply[1]) / 1000,
          remaining: applied.map((_, i) => Number(reply[2 + 2 * i])),
          resetMs: applied.map((_, i) => Number(reply[3 + 2 * i]) / 1000),
        };
      } catch (error) {
        // A failing or slow Redis is left alone for a while: no request waits on it meanwhile.
        this.fallbacks.inc({ reason: 'error' });
        if (Date.now() >= this.redisBackoffUntil)
          this.options.log?.('warn', 'rate limits: Redis failed (deciding locally for a while)', {
            err: String(error),
          });
        this.redisBackoffUntil = Date.now() + REDIS_BACKOFF_MS;
      }
    } else if (this.redis)
      this.fallbacks.inc({ reason: this.redis.status === 'ready' ? 'backoff' : 'disconnected' });
    if (!answer) {
      backend = 'local';
      if (this.redis && applied.some((a) => a.limit.failClosed)) {
        for (const { limit } of applied)
          this.decisions.inc({ policy: limit.policy, limit: limit.name, decision: 'unavailable', backend });
        return { verdict: 'unavailable', headers: {} };
      }
      answer = this.decideLocally(applied);
    }
    const decision = answer.limited ? 'limited' : 'allowed';
    for (const { limit } of applied)
      this.decisions.inc({ policy: limit.policy, limit: limit.name, decision, backend });
    // The tightest limit speaks for the request (draft-ietf-httpapi-ratelimit-headers).
    let tightest = 0;
    for (let i = 1; i < applied.length; i++)
      if (answer.remaining[i]! < answer.remaining[tightest]!) tightest = i;
    const { limit } = applied[tightest]!;
    const headers: Record<string, string> = {
      'ratelimit-policy': applied
        .map((a) => `"${a.limit.name}";q=${a.limit.requests};w=${Math.ceil(a.limit.periodMs / 1000)}`)
        .join(', '),
      ratelimit: `"${limit.name}";r=${answer.remaining[tightest]};t=${Math.ceil(answer.resetMs[tightest]! / 1000)}`,
    };
    if (answer.limited) headers['retry-after'] = String(Math.max(1, Math.ceil(answer.waitMs / 1000)));
    return { verdict: answer.limited ? 'limited' : 'ok', headers };
  }

  /** The same GCRA, in this process. */
  private decideLocally(applied: ReadonlyArray<{ limit: Limit; key: string }>) {
    const now = Date.now() * 1000;
    let limited = false;
    let waitUs = 0;
    const next: number[] = [];
    const remaining: number[] = [];
    for (const { limit, key } of applied) {
      const interval = intervalUs(limit);
      const tat = Math.max(this.local.get(key) ?? now, now);
      const room = now - (tat + interval - limit.periodMs * 1000);
      if (room < 0) {
        limited = true;
        waitUs = Math.max(waitUs, -room);
        remaining.push(0);
        next.push(tat);
      } else {
        remaining.push(Math.floor(room / interval));
        next.push(tat + interval);
      }
    }
    if (!limited)
      applied.forEach(({ key }, i) => {
        this.local.delete(key);
        this.local.set(key, next[i]!);
        if (this.local.size > LOCAL_BUCKETS) this.local.delete(this.local.keys().next().value!);
      });
    return { limited, waitMs: waitUs / 1000, remaining, resetMs: next.map((tat) => (tat - now) / 1000) };
  }

  async close(): Promise<void> {
    this.redis?.disconnect();
  }
}
