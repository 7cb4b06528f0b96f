import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxyConfig } from '@causeway/discovery';
import { backoffMs, retriableAnswer, RetryBudget, retryPolicyOf } from './retries.ts';

const config = (retries: unknown): ProxyConfig =>
  ({
    services: [],
    routes: [],
    policies: [
      {
        kind: 'TrafficPolicy',
        namespace: 'shop',
        name: 'p',
        spec: { targetRefs: [{ kind: 'Service', name: 'cart' }], retries },
      },
    ],
  }) as unknown as ProxyConfig;

test('defaults: two retries on connect failures, resets, gateway errors and UNAVAILABLE, a 20% budget', () => {
  const policy = retryPolicyOf(config({}), 'shop', 'cart', undefined)!;
  assert.equal(policy.retries, 2);
  assert.deepEqual([...policy.retryOn].sort(), ['connect-failure', 'gateway-error', 'reset', 'unavailable']);
  assert.equal(policy.budgetShare, 0.2);
  assert.equal(policy.minPerSecond, 10);
  assert.equal(retryPolicyOf(config({}), 'shop', 'till', undefined), undefined);
});

test('what is retried: 5xx, gateway errors, 409, listed codes, and gRPC statuses by name', () => {
  const p = (retryOn: string[], retriableStatusCodes: number[] = []) =>
    retryPolicyOf(config({ retryOn, retriableStatusCodes }), 'shop', 'cart', undefined)!;
  assert.equal(retriableAnswer(p(['5xx']), 500, ''), true);
  assert.equal(retriableAnswer(p(['gateway-error']), 500, ''), false);
  assert.equal(retriableAnswer(p(['gateway-error']), 504, ''), true);
  assert.equal(retriableAnswer(p(['retriable-4xx']), 409, ''), true);
  assert.equal(retriableAnswer(p([], [429]), 429, ''), true);
  assert.equal(retriableAnswer(p(['unavailable']), 200, '14'), true);
  assert.equal(retriableAnswer(p(['unavailable']), 200, '8'), false);
  assert.equal(retriableAnswer(p(['resource-exhausted']), 200, '8'), true);
  assert.equal(retriableAnswer(p(['5xx']), 200, ''), false);
});

test('backoff grows exponentially to its ceiling, with full jitter', () => {
  const policy = retryPolicyOf(
    config({ backoff: { baseInterval: '10ms', maxInterval: '50ms' } }),
    'shop',
    'cart',
    undefined,
  )!;
  assert.deepEqual(
    [1, 2, 3, 4, 10].map((n) => backoffMs(policy, n, () => 0.999999)),
    [10, 20, 40, 50, 50],
  );
  assert.equal(
    backoffMs(policy, 3, () => 0),
    0,
  );
});

test('a budget lets retries add their share of the requests plus a floor per second, over the last 10 s', () => {
  let second = 100;
  const budget = new RetryBudget(() => second);
  for (let i = 0; i < 100; i++) budget.request();
  // 20% of 100, plus 1 per second over 10 s.
  let granted = 0;
  while (budget.withdraw(0.2, 1)) granted++;
  assert.equal(granted, 30);
  // Ten seconds on, the window is empty: only the floor is left.
  second += 10;
  granted = 0;
  while (budget.withdraw(0.2, 1)) granted++;
  assert.equal(granted, 10);
  // Requests of the new window raise it again.
  for (let i = 0; i < 50; i++) budget.request();
  assert.equal(budget.withdraw(0.2, 1), true);
});
