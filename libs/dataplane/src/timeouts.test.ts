import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxyConfig } from '@causeway/discovery';
import { formatGrpcTimeout, grpcTimeoutMs, requestTimeoutsOf } from './timeouts.ts';

const config = (spec: Record<string, unknown>): ProxyConfig =>
  ({
    services: [],
    routes: [],
    policies: [
      {
        kind: 'TrafficPolicy',
        namespace: 'shop',
        name: 'p',
        spec: { targetRefs: [{ kind: 'Service', name: 'cart' }], ...spec },
      },
    ],
  }) as unknown as ProxyConfig;
const to = (extra: Record<string, unknown> = {}) => ({ namespace: 'shop', name: 'cart', port: 80, ...extra });

test("a TrafficPolicy's request timeout and per-try timeout; 0s, or more than a timer holds, means no limit", () => {
  assert.deepEqual(
    requestTimeoutsOf(
      config({ timeouts: { request: '2s' }, retries: { perTryTimeout: '500ms' } }),
      'shop',
      'cart',
      to(),
    ),
    { requestMs: 2_000, perTryMs: 500 },
  );
  assert.deepEqual(requestTimeoutsOf(config({ timeouts: { request: '0s' } }), 'shop', 'cart', to()), {});
  assert.deepEqual(requestTimeoutsOf(config({ timeouts: { request: '99999h' } }), 'shop', 'cart', to()), {});
  assert.deepEqual(requestTimeoutsOf(config({}), 'shop', 'till', to({ name: 'till' })), {});
});

test("the route rule's own timeouts win; a per-try limit never exceeds the request's", () => {
  const withRule = to({ route: 'shop/r#0', timeouts: { request: '1s', backendRequest: '3s' } });
  assert.deepEqual(
    requestTimeoutsOf(
      config({ timeouts: { request: '9s' }, retries: { perTryTimeout: '100ms' } }),
      'shop',
      'cart',
      withRule,
    ),
    { requestMs: 1_000, perTryMs: 1_000 },
  );
  // `0s` on the rule: no limit, whatever the policy says.
  assert.deepEqual(
    requestTimeoutsOf(
      config({ timeouts: { request: '9s' } }),
      'shop',
      'cart',
      to({ route: 'shop/r#0', timeouts: { request: '0s' } }),
    ),
    {},
  );
});

test('grpc-timeout values: every unit, at most 8 digits; what is left goes on in whole ms', () => {
  assert.equal(grpcTimeoutMs('1H'), 3_600_000);
  assert.equal(grpcTimeoutMs('2M'), 120_000);
  assert.equal(grpcTimeoutMs('3S'), 3_000);
  assert.equal(grpcTimeoutMs('250m'), 250);
  assert.equal(grpcTimeoutMs('1500u'), 1.5);
  assert.ok(Math.abs(grpcTimeoutMs('100n')! - 0.0001) < 1e-12);
  for (const bad of ['', '123456789m', '5s', '-1m', '1.5S', undefined, 7])
    assert.equal(grpcTimeoutMs(bad), undefined);
  assert.equal(formatGrpcTimeout(199.7), '199m');
  assert.equal(formatGrpcTimeout(0.2), '1m');
  assert.equal(formatGrpcTimeout(1e9), '1000000S');
  // A deadline too long for a timer (grpc-go's 30-day "no deadline") is no limit.
  assert.equal(grpcTimeoutMs('2592000S'), undefined);
  assert.equal(grpcTimeoutMs('99999999H'), undefined);
});
