import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutlierDetector, resultOfAnswer, type OutlierPolicy } from './outliers.ts';

const endpoint = (key: string) => ({ key, cluster: 'east', host: '10.0.0.1', port: Number(key.length) });
const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(endpoint) as [
  ReturnType<typeof endpoint>,
  ReturnType<typeof endpoint>,
  ReturnType<typeof endpoint>,
  ReturnType<typeof endpoint>,
];
const group = [a, b, c, d];
const policy: OutlierPolicy = {
  policy: 'shop/p',
  consecutive5xx: 3,
  consecutiveGateway: 2,
  consecutiveLocal: 2,
  intervalMs: 10_000,
  baseEjectionMs: 1_000,
  maxEjectionMs: 2_500,
  maxEjectionPercent: 50,
};

test('answers count as server errors, gateway errors (502-504, gRPC UNAVAILABLE) or successes', () => {
  assert.equal(resultOfAnswer(200, ''), 'success');
  assert.equal(resultOfAnswer(404, ''), 'success');
  assert.equal(resultOfAnswer(500, ''), '5xx');
  assert.equal(resultOfAnswer(503, ''), 'gateway');
  assert.equal(resultOfAnswer(200, '14'), 'gateway');
  assert.equal(resultOfAnswer(200, '13'), '5xx');
  assert.equal(resultOfAnswer(200, '5'), 'success');
});

test('consecutive 5xx eject; a success in between starts the count again', () => {
  const detector = new OutlierDetector();
  assert.equal(detector.record(a, group, policy, '5xx', 's', 0), undefined);
  assert.equal(detector.record(a, group, policy, '5xx', 's', 0), undefined);
  assert.equal(detector.record(a, group, policy, 'success', 's', 0), undefined);
  assert.equal(detector.record(a, group, policy, '5xx', 's', 0), undefined);
  assert.equal(detector.record(a, group, policy, '5xx', 's', 0), undefined);
  assert.deepEqual(detector.record(a, group, policy, '5xx', 's', 0), { ms: 1_000, cause: 'consecutive-5xx' });
  assert.deepEqual(
    detector.ejected(500).map((e) => [e.endpoint, e.reason, e.ejections]),
    [['10.0.0.1:1', 'consecutive-5xx', 1]],
  );
  assert.deepEqual(detector.ejected(1_000), [], 'back after its time');
});

test('gateway errors and connect failures eject at their own counts', () => {
  const detector = new OutlierDetector();
  detector.record(a, group, policy, 'gateway', 's', 0);
  assert.equal(detector.record(a, group, policy, 'gateway', 's', 0)?.cause, 'consecutive-gateway-errors');
  detector.record(b, group, policy, 'local', 's', 0);
  assert.equal(detector.record(b, group, policy, 'local', 's', 0)?.cause, 'consecutive-local-failures');
});

test('each ejection lasts longer, up to the maximum; ejections are forgotten one per interval in', () => {
  const detector = new OutlierDetector();
  const eject = (now: number) => {
    detector.record(a, group, policy, 'local', 's', now);
    return detector.record(a, group, policy, 'local', 's', now)?.ms;
  };
  assert.equal(eject(0), 1_000);
  assert.equal(eject(1_000), 2_000);
  assert.equal(eject(3_000), 2_500, 'capped at maxEjectionTime');
  // Back at 5,500; 25 s in (two intervals): two of the three are forgotten.
  assert.equal(eject(30_500), 2_000);
});

test('at most maxEjectionPercent of the endpoints is out at once (at least one may be); none at 0%', () => {
  const detector = new OutlierDetector();
  const fail = (target: typeof a, p = policy) => {
    detector.record(target, group, p, 'gateway', 's', 0);
    return detector.record(target, group, p, 'gateway', 's', 0);
  };
  assert.ok(fail(a));
  assert.ok(fail(b));
  assert.equal(fail(c), undefined, '50% of 4: two at most');
  assert.equal(detector.ejected(0).length, 2);
  const small = new OutlierDetector();
  const one = { ...policy, maxEjectionPercent: 10 };
  small.record(a, group, one, 'gateway', 's', 0);
  assert.ok(small.record(a, group, one, 'gateway', 's', 0), '10% of 4 still lets one go');
  const none = new OutlierDetector();
  const never = { ...policy, maxEjectionPercent: 0 };
  none.record(a, group, never, 'gateway', 's', 0);
  assert.equal(none.record(a, group, never, 'gateway', 's', 0), undefined);
});

test('a try with no answer (a reset, a try out of time) is a gateway error, not a 5xx answer', () => {
  const detector = new OutlierDetector();
  const only5xx = { ...policy, consecutiveGateway: undefined, consecutive5xx: 2 };
  detector.record(a, group, only5xx, 'reset', 's', 0);
  assert.equal(detector.record(a, group, only5xx, 'reset', 's', 0), undefined);
  assert.equal(detector.record(a, group, policy, 'reset', 's', 0)?.cause, 'consecutive-gateway-errors');
});

test('a tunnel opened ends a run of connect failures, not a run of 5xx answers', () => {
  const detector = new OutlierDetector();
  const only = { ...policy, consecutiveGateway: undefined };
  detector.record(a, group, only, '5xx', 's', 0);
  detector.record(a, group, only, '5xx', 's', 0);
  detector.record(a, group, only, 'local', 's', 0);
  detector.record(a, group, only, 'connected', 's', 0);
  assert.equal(
    detector.record(a, group, only, 'local', 's', 0),
    undefined,
    'the connect failures start over',
  );
  assert.equal(detector.record(a, group, only, '5xx', 's', 0)?.cause, 'consecutive-5xx');
});
