import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dataPlaneMode } from './mode.ts';
import type { CompiledRoute, PolicyView } from './routes.ts';

const policy = (kind: PolicyView['kind'], name: string, spec: object, namespace = 'shop'): PolicyView => ({
  kind,
  namespace,
  name,
  spec: { targetRefs: [{ group: '', kind: 'Service', name: 'cart' }], ...spec },
});
const route = (port?: number): CompiledRoute =>
  ({
    kind: 'HTTPRoute',
    namespace: 'shop',
    name: 'split',
    hostnames: [],
    parents: [{ kind: 'Service', namespace: 'shop', name: 'cart', ...(port ? { port } : {}) }],
    rules: [],
  }) as unknown as CompiledRoute;

test('a service port is L4 unless a route or a request-level policy needs HTTP', () => {
  const cases: Array<[string, { routes?: CompiledRoute[]; policies?: PolicyView[] }, 'L4' | 'L7']> = [
    ['nothing attached', {}, 'L4'],
    [
      'identity-only authorization',
      {
        policies: [
          policy('AuthorizationPolicy', 'a', {
            action: 'ALLOW',
            rules: [{ from: [{ namespaces: ['web'] }] }],
          }),
        ],
      },
      'L4',
    ],
    [
      'a path rule',
      {
        policies: [
          policy('AuthorizationPolicy', 'a', { action: 'DENY', rules: [{ to: [{ paths: ['/admin'] }] }] }),
        ],
      },
      'L7',
    ],
    [
      'a header condition',
      { policies: [policy('AuthorizationPolicy', 'a', { rules: [{ when: [{ header: 'x' }] }] })] },
      'L7',
    ],
    [
      'load balancing only',
      { policies: [policy('TrafficPolicy', 't', { loadBalancer: { type: 'RoundRobin' } })] },
      'L4',
    ],
    ['retries', { policies: [policy('TrafficPolicy', 't', { retries: { attempts: 2 } })] }, 'L7'],
    [
      'connection-level limits and splits',
      {
        policies: [
          policy('TrafficPolicy', 't', {
            timeouts: { connect: '1s', idle: '1m' },
            circuitBreaker: { maxConnections: 10 },
            outlierDetection: { consecutiveLocalOriginFailures: 3, baseEjectionTime: '10s' },
            clusterWeights: [{ cluster: 'east', weight: 1 }],
            locality: { clusterPriority: ['west'] },
          }),
        ],
      },
      'L4',
    ],
    [
      'a request timeout',
      { policies: [policy('TrafficPolicy', 't', { timeouts: { request: '1s' } })] },
      'L7',
    ],
    [
      'a request limit',
      { policies: [policy('TrafficPolicy', 't', { circuitBreaker: { maxRequests: 5 } })] },
      'L7',
    ],
    [
      'outlier detection on 5xx answers',
      { policies: [policy('TrafficPolicy', 't', { outlierDetection: { consecutive5xxErrors: 2 } })] },
      'L7',
    ],
    [
      'outlier detection with its default counters',
      { policies: [policy('TrafficPolicy', 't', { outlierDetection: { interval: '5s' } })] },
      'L7',
    ],
    ['a rate limit', { policies: [policy('RateLimitPolicy', 'r', {})] }, 'L7'],
    [
      'a policy on a route that shares the Service name',
      {
        policies: [
          {
            ...policy('TrafficPolicy', 't', { retries: { attempts: 2 } }),
            spec: {
              targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'cart' }],
              retries: { attempts: 2 },
            },
          },
        ],
      },
      'L4',
    ],
    [
      'a policy in another namespace',
      { policies: [policy('AuthorizationPolicy', 'a', { rules: [{ to: [{}] }] }, 'other')] },
      'L4',
    ],
    ['a route on the port', { routes: [route(80)] }, 'L7'],
    ['a route on another port', { routes: [route(81)] }, 'L4'],
    ['a route on every port', { routes: [route()] }, 'L7'],
  ];
  for (const [what, config, mode] of cases) {
    const decision = dataPlaneMode(
      { routes: config.routes ?? [], policies: config.policies ?? [] },
      'shop',
      'cart',
      80,
    );
    assert.equal(decision.mode, mode, what);
    assert.equal(decision.reasons.length > 0, mode === 'L7', what);
  }
});
