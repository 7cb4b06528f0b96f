import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter, type Limit } from './rate-limit.ts';

const limit = (requests: number, periodMs: number, descriptors: Limit['descriptors'] = []): Limit => ({
  policy: 'shop/p',
  name: 'l',
  requests,
  periodMs,
  descriptors,
  failClosed: false,
});
const request = (headers: Record<string, string> = {}) => ({
  remoteAddress: '10.0.0.1',
  method: 'GET',
  path: '/',
  headers,
});

test('the local limiter lets exactly the burst through, even when the interval is not a whole number', async () => {
  const limiter = new RateLimiter({});
  const verdicts: string[] = [];
  for (let i = 0; i < 10; i++) verdicts.push((await limiter.check([limit(7, 3_600_000)], request())).verdict);
  assert.deepEqual(verdicts, [...Array(7).fill('ok'), ...Array(3).fill('limited')]);
  const refused = await limiter.check([limit(7, 3_600_000)], request());
  assert.equal(refused.headers['ratelimit-policy'], '"l";q=7;w=3600');
  assert.match(refused.headers['ratelimit']!, /^"l";r=0;t=\d+$/);
  assert.ok(Number(refused.headers['retry-after']) >= 514);
});

test('a limit of more than a million a second is enforced as a million, never as a nonsense count', async () => {
  const limiter = new RateLimiter({});
  const answer = await limiter.check([limit(5_000_000, 1_000)], request());
  assert.equal(answer.verdict, 'ok');
  assert.match(answer.headers['ratelimit']!, /^"l";r=\d+;t=\d+$/);
});

test('a header descriptor makes a bucket per value, and a request without the header is not under the limit', async () => {
  const limiter = new RateLimiter({});
  const byTenant = [limit(1, 60_000, [{ key: 'header', header: 'X-Tenant' }])];
  assert.equal((await limiter.check(byTenant, request({ 'x-tenant': 'a' }))).verdict, 'ok');
  assert.equal((await limiter.check(byTenant, request({ 'x-tenant': 'a' }))).verdict, 'limited');
  assert.equal((await limiter.check(byTenant, request({ 'x-tenant': 'b' }))).verdict, 'ok');
  const free = await limiter.check(byTenant, request());
  assert.deepEqual(free, { verdict: 'ok', headers: {} });
});
