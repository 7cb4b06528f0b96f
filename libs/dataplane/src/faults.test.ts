import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxyConfig } from '@causeway/discovery';
import { abortStatus, decideFault, faultPolicyOf } from './faults.ts';
import { grpcStatusForHttp } from './http-util.ts';

const config = (
  policies: Array<{ name: string; targetRefs: unknown[]; faultInjection: unknown }>,
): ProxyConfig =>
  ({
    services: [],
    routes: [],
    policies: policies.map(({ name, ...spec }) => ({ kind: 'TrafficPolicy', namespace: 'shop', name, spec })),
  }) as unknown as ProxyConfig;

const facts = (headers: Record<string, string> = {}) => ({ method: 'GET', path: '/', headers, grpc: false });

/** A random source that returns the given values in turn. */
const sequence = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

test('a policy on the route that chose the backend wins over one on the Service', () => {
  const both = config([
    {
      name: 'on-service',
      targetRefs: [{ kind: 'Service', name: 'cart' }],
      faultInjection: { abort: { httpStatus: 500 } },
    },
    {
      name: 'on-route',
      targetRefs: [{ kind: 'HTTPRoute', name: 'cart-split' }],
      faultInjection: { abort: { httpStatus: 418 } },
    },
  ]);
  assert.equal(faultPolicyOf(both, 'shop', 'cart', 'shop/cart-split#0')?.policy, 'shop/on-route');
  assert.equal(faultPolicyOf(both, 'shop', 'cart', 'shop/other#0')?.policy, 'shop/on-service');
  assert.equal(faultPolicyOf(both, 'shop', 'cart', undefined)?.policy, 'shop/on-service');
  assert.equal(faultPolicyOf(both, 'shop', 'till', undefined), undefined);
  assert.equal(faultPolicyOf(both, 'other', 'cart', undefined), undefined, 'another namespace');
});

test('shares: a draw under the percentage faults the request; no percentage means every request', () => {
  const policy = faultPolicyOf(
    config([
      {
        name: 'p',
        targetRefs: [{ kind: 'ServiceImport', name: 'cart' }],
        faultInjection: { delay: { fixedDelay: '1s500ms', percentage: 25 }, abort: { grpcStatus: 8 } },
      },
    ]),
    'shop',
    'cart',
    undefined,
  );
  assert.deepEqual(decideFault(policy, facts(), sequence(0.2, 0.99)), {
    delayMs: 1_500,
    abort: { httpStatus: undefined, grpcStatus: 8 },
  });
  assert.deepEqual(decideFault(policy, facts(), sequence(0.25, 0.5)), {
    delayMs: 0,
    abort: { httpStatus: undefined, grpcStatus: 8 },
  });
  const none = faultPolicyOf(
    config([
      {
        name: 'p',
        targetRefs: [{ kind: 'Service', name: 'cart' }],
        faultInjection: { abort: { httpStatus: 503, percentage: 0 } },
      },
    ]),
    'shop',
    'cart',
    undefined,
  );
  assert.equal(
    decideFault(none, facts(), () => 0),
    undefined,
  );
});

test('a header match limits the fault to the requests that carry it', () => {
  const policy = faultPolicyOf(
    config([
      {
        name: 'p',
        targetRefs: [{ kind: 'Service', name: 'cart' }],
        faultInjection: { abort: { httpStatus: 503 }, headers: [{ name: 'X-Chaos', value: 'on' }] },
      },
    ]),
    'shop',
    'cart',
    undefined,
  );
  assert.equal(
    decideFault(policy, facts(), () => 0),
    undefined,
  );
  assert.equal(
    decideFault(policy, facts({ 'x-chaos': 'off' }), () => 0),
    undefined,
  );
  assert.deepEqual(decideFault(policy, facts({ 'x-chaos': 'on' }), () => 0)?.abort, {
    httpStatus: 503,
    grpcStatus: undefined,
  });
});

test('an abort answers its HTTP status, and gRPC callers the gRPC status (set, or the one for the HTTP status)', () => {
  assert.deepEqual(abortStatus({ httpStatus: 503 }, grpcStatusForHttp), { http: 503, grpc: 14 });
  assert.deepEqual(abortStatus({ httpStatus: 503, grpcStatus: 8 }, grpcStatusForHttp), {
    http: 503,
    grpc: 8,
  });
  assert.deepEqual(abortStatus({ grpcStatus: 4 }, grpcStatusForHttp), { http: 503, grpc: 4 });
});

test('a header pattern that does not compile faults nothing (and throws nothing)', () => {
  const policy = faultPolicyOf(
    config([
      {
        name: 'p',
        targetRefs: [{ kind: 'Service', name: 'cart' }],
        faultInjection: {
          abort: { httpStatus: 503 },
          headers: [{ type: 'RegularExpression', name: 'x-chaos', value: '(' }],
        },
      },
    ]),
    'shop',
    'cart',
    undefined,
  );
  assert.equal(
    decideFault(policy, facts({ 'x-chaos': '(' }), () => 0),
    undefined,
  );
});
