import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Breaker, overflowMessage, overflowOf } from './circuit-breaker.ts';

test('requests over maxRequests are turned away at once when none may wait', async () => {
  const breaker = new Breaker();
  const limits = { policy: 'shop/p', maxRequests: 2 };
  assert.equal(await breaker.enter(limits), true);
  assert.equal(await breaker.enter(limits), true);
  assert.equal(await breaker.enter(limits), 'max-requests');
  breaker.leave();
  assert.equal(await breaker.enter(limits), true);
});

test('up to maxPendingRequests wait for a place, first come first served; a wait can be given up', async () => {
  const breaker = new Breaker();
  const limits = { policy: 'shop/p', maxRequests: 1, maxPendingRequests: 2 };
  assert.equal(await breaker.enter(limits), true);
  const order: string[] = [];
  const first = breaker.enter(limits).then((r) => order.push(`first ${String(r)}`));
  const gaveUp = new AbortController();
  const second = breaker.enter(limits, gaveUp.signal).then((r) => order.push(`second ${String(r)}`));
  assert.equal(await breaker.enter(limits), 'max-pending-requests');
  gaveUp.abort();
  await second;
  breaker.leave();
  await first;
  assert.deepEqual(order, ['second aborted', 'first true']);
  assert.equal(breaker.requests, 1);
  breaker.leave();
  assert.ok(breaker.idle);
});

test('a refusal message names its limit, and only a breaker refusal is read as one', () => {
  assert.equal(overflowOf(overflowMessage('max-connections', 'shop/p')), 'max-connections');
  assert.equal(overflowOf('upstream connect error: circuit breaker: max-requests'), undefined);
});
