import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileTrafficPolicies, type LastValidSpec, type TrafficPolicyObject } from './traffic-policies.ts';

const CART = { group: '', kind: 'Service', name: 'cart' };

function policy(
  name: string,
  spec: Record<string, unknown>,
  meta: { uid?: string; generation?: number; created?: string } = {},
): TrafficPolicyObject {
  return {
    metadata: {
      namespace: 'shop',
      name,
      uid: meta.uid ?? `uid-${name}`,
      generation: meta.generation ?? 1,
      creationTimestamp: meta.created ?? '2026-01-01T00:00:00Z',
    },
    spec: { targetRefs: [CART], ...spec },
  };
}

const everything = () => true;
const accepted = (compiled: ReturnType<typeof compileTrafficPolicies>) =>
  compiled.verdicts.map((v) => [
    v.name,
    ...v.ancestors.map((a) => `${a.ancestorRef.kind}/${a.ancestorRef.name}=${a.conditions[0]!.reason}`),
  ]);

test('a valid policy is accepted and goes to proxies whole', () => {
  const compiled = compileTrafficPolicies(
    [policy('retries', { retries: { attempts: 3 } })],
    everything,
    new Map(),
  );
  assert.deepEqual(accepted(compiled), [['retries', 'Service/cart=Accepted']]);
  assert.deepEqual(compiled.policies, [
    {
      kind: 'TrafficPolicy',
      namespace: 'shop',
      name: 'retries',
      spec: { targetRefs: [CART], retries: { attempts: 3 } },
    },
  ]);
  assert.equal(compiled.lastValid.get('shop/retries')?.generation, 1);
});

test('an invalid spec is refused naming the field, and the last valid spec of the same object stays in force', () => {
  const first = compileTrafficPolicies(
    [policy('timeouts', { timeouts: { request: '2s' }, retries: { perTryTimeout: '1s' } })],
    everything,
    new Map(),
  );
  const broken = policy(
    'timeouts',
    { timeouts: { request: '2s' }, retries: { perTryTimeout: '5s' } },
    { generation: 2 },
  );
  const second = compileTrafficPolicies([broken], everything, first.lastValid);
  const verdict = second.verdicts[0]!;
  assert.match(verdict.invalid!, /^spec\.retries\.perTryTimeout: 5s is longer than timeouts\.request \(2s\)/);
  assert.equal(verdict.inForce, 1);
  assert.equal(verdict.ancestors[0]!.conditions[0]!.reason, 'Invalid');
  assert.match(
    verdict.ancestors[0]!.conditions[0]!.message,
    /the last valid spec \(generation 1\) stays in force/,
  );
  assert.deepEqual(
    (second.policies[0]!.spec as { retries: unknown }).retries,
    { perTryTimeout: '1s' },
    'proxies keep the valid spec',
  );
  // Fixed: the new spec applies.
  const third = compileTrafficPolicies(
    [
      policy(
        'timeouts',
        { timeouts: { request: '2s' }, retries: { perTryTimeout: '2s' } },
        { generation: 3 },
      ),
    ],
    everything,
    second.lastValid,
  );
  assert.deepEqual(accepted(third), [['timeouts', 'Service/cart=Accepted']]);
  assert.equal(third.lastValid.get('shop/timeouts')?.generation, 3);
});

test('an invalid policy with no valid past applies nothing; a recreated object does not inherit the old one', () => {
  const previous = new Map<string, LastValidSpec>([
    ['shop/p', { uid: 'old-uid', generation: 4, spec: { targetRefs: [CART], retries: { attempts: 1 } } }],
  ]);
  const compiled = compileTrafficPolicies(
    [policy('p', { faultInjection: {} }, { uid: 'new-uid' })],
    everything,
    previous,
  );
  assert.deepEqual(compiled.policies, []);
  assert.match(
    compiled.verdicts[0]!.ancestors[0]!.conditions[0]!.message,
    /faultInjection: sets neither delay nor abort; nothing of this policy applies/,
  );
  assert.equal(compiled.lastValid.size, 0);
});

test('two policies on one target: the older holds it, the other is Conflicted there and keeps its other targets', () => {
  const NOTES = { group: '', kind: 'Service', name: 'notes' };
  const compiled = compileTrafficPolicies(
    [
      policy(
        'newer',
        { targetRefs: [CART, NOTES], retries: { attempts: 1 } },
        { created: '2026-02-01T00:00:00Z' },
      ),
      policy('older', { retries: { attempts: 2 } }, { created: '2026-01-01T00:00:00Z' }),
      // Same age: the name decides.
      policy('a-same-age', { retries: { attempts: 3 } }, { created: '2026-01-01T00:00:00Z' }),
    ],
    everything,
    new Map(),
  );
  assert.deepEqual(accepted(compiled), [
    ['newer', 'Service/cart=Conflicted', 'Service/notes=Accepted'],
    ['older', 'Service/cart=Conflicted'],
    ['a-same-age', 'Service/cart=Accepted'],
  ]);
  assert.match(
    compiled.verdicts[0]!.ancestors[0]!.conditions[0]!.message,
    /TrafficPolicy shop\/a-same-age targets Service shop\/cart too and came first/,
  );
  assert.deepEqual(
    compiled.policies.map((p) => [
      p.name,
      (p.spec as { targetRefs: Array<{ name: string }> }).targetRefs.map((r) => r.name),
    ]),
    [
      ['newer', ['notes']],
      ['a-same-age', ['cart']],
    ],
  );
});

test('a target that does not exist is TargetNotFound; the policy still reaches proxies for when it does', () => {
  const compiled = compileTrafficPolicies(
    [
      policy('early', {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'later' }],
        retries: { attempts: 2 },
      }),
    ],
    (kind) => kind !== 'HTTPRoute',
    new Map(),
  );
  assert.deepEqual(accepted(compiled), [['early', 'HTTPRoute/later=TargetNotFound']]);
  assert.equal(compiled.policies.length, 1);
});

test('file-mode creation times (Date objects) order policies too; a ServiceImport and its Service are one target', () => {
  const dated = (name: string, created: string, ref: Record<string, string>): TrafficPolicyObject => ({
    metadata: { namespace: 'shop', name, uid: name, generation: 1, creationTimestamp: new Date(created) },
    spec: { targetRefs: [ref], retries: { attempts: 1 } },
  });
  const compiled = compileTrafficPolicies(
    [
      dated('on-import', '2026-03-01T00:00:00Z', {
        group: 'multicluster.x-k8s.io',
        kind: 'ServiceImport',
        name: 'cart',
      }),
      dated('on-service', '2026-02-01T00:00:00Z', { group: '', kind: 'Service', name: 'cart' }),
    ],
    everything,
    new Map(),
  );
  assert.deepEqual(accepted(compiled), [
    ['on-import', 'ServiceImport/cart=Conflicted'],
    ['on-service', 'Service/cart=Accepted'],
  ]);
});

test('outlier detection and circuit breaker settings that cannot work are refused, naming the field', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [
      { outlierDetection: { baseEjectionTime: '1m', maxEjectionTime: '30s' } },
      /^spec\.outlierDetection\.maxEjectionTime: 30s is shorter than baseEjectionTime \(1m\)/,
    ],
    [{ outlierDetection: { interval: '0s' } }, /^spec\.outlierDetection\.interval: must be longer than 0s/],
    [
      { circuitBreaker: { maxPendingRequests: 10 } },
      /^spec\.circuitBreaker\.maxPendingRequests: requests wait only for a free place under maxRequests/,
    ],
  ];
  for (const [spec, reason] of cases) {
    const compiled = compileTrafficPolicies([policy('p', spec)], everything, new Map());
    assert.match(compiled.verdicts[0]!.invalid ?? '', reason, JSON.stringify(spec));
    assert.deepEqual(compiled.policies, []);
  }
  const valid = compileTrafficPolicies(
    [
      policy('p', {
        outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: '10s', maxEjectionTime: '1m' },
        circuitBreaker: { maxRequests: 10, maxPendingRequests: 5 },
      }),
    ],
    everything,
    new Map(),
  );
  assert.deepEqual(accepted(valid), [['p', 'Service/cart=Accepted']]);
});
