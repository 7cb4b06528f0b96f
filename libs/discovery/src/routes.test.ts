import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRoutes, type RefKind, type RouteView } from './routes.ts';

const known = new Set(['Service/shop/cart', 'ServiceImport/shop/pay', 'Gateway/edge/public']);
const exists = (kind: RefKind, namespace: string, name: string) => known.has(`${kind}/${namespace}/${name}`);

const route = (spec: RouteView['spec'], kind: RouteView['kind'] = 'HTTPRoute'): RouteView => ({
  kind,
  metadata: { namespace: 'shop', name: 'r' },
  spec,
});

const conditions = (statuses: ReturnType<typeof compileRoutes>['statuses'], key = 'HTTPRoute/shop/r') =>
  statuses.get(key)!.map((parent) => parent.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`));

test('a mesh route on a Service with resolvable backends is accepted, with defaults filled in', () => {
  const { routes, statuses } = compileRoutes(
    [
      route({
        parentRefs: [{ group: '', kind: 'Service', name: 'cart' }],
        rules: [
          {
            backendRefs: [
              { name: 'cart', port: 80 },
              { group: 'multicluster.x-k8s.io', kind: 'ServiceImport', name: 'pay', port: 80, weight: 3 },
            ],
          },
        ],
      }),
    ],
    exists,
  );
  assert.deepEqual(conditions(statuses), [['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']]);
  assert.deepEqual(routes[0]!.parents, [{ kind: 'Service', namespace: 'shop', name: 'cart' }]);
  assert.deepEqual(
    routes[0]!.rules[0]!.backends.map((b) => [b.kind, b.name, b.weight, b.resolved]),
    [
      ['Service', 'cart', 1, true],
      ['ServiceImport', 'pay', 3, true],
    ],
  );
});

test('missing, foreign-namespace and wrong-kind backends are named in ResolvedRefs and kept unresolved', () => {
  for (const [ref, reason] of [
    [{ name: 'ghost' }, 'BackendNotFound'],
    [{ name: 'cart', namespace: 'other' }, 'RefNotPermitted'],
    [{ group: 'example.com', kind: 'Bucket', name: 'cart' }, 'InvalidKind'],
  ] as const) {
    const { routes, statuses } = compileRoutes(
      [route({ parentRefs: [{ name: 'public', namespace: 'edge' }], rules: [{ backendRefs: [ref] }] })],
      exists,
    );
    assert.deepEqual(conditions(statuses), [['Accepted=True/Accepted', `ResolvedRefs=False/${reason}`]]);
    assert.equal(routes[0]!.rules[0]!.backends[0]!.resolved, false);
  }
});

test('a route whose parent does not exist or is not supported is not compiled', () => {
  const { routes, statuses } = compileRoutes(
    [
      route(
        {
          parentRefs: [{ name: 'nowhere' }, { group: 'example.com', kind: 'Mesh', name: 'm' }],
          rules: [{ backendRefs: [{ name: 'cart' }] }],
        },
        'GRPCRoute',
      ),
    ],
    exists,
  );
  assert.deepEqual(routes, []);
  assert.deepEqual(conditions(statuses, 'GRPCRoute/shop/r'), [
    ['Accepted=False/NoMatchingParent', 'ResolvedRefs=True/ResolvedRefs'],
    ['Accepted=False/UnsupportedValue', 'ResolvedRefs=True/ResolvedRefs'],
  ]);
});

test('a ReferenceGrant in the backend namespace permits exactly the kinds, namespaces and names it lists', () => {
  const crossNamespace = [
    route({
      parentRefs: [{ name: 'public', namespace: 'edge' }],
      rules: [{ backendRefs: [{ name: 'cart', namespace: 'other' }] }],
    }),
  ];
  const known = (kind: RefKind, namespace: string, name: string) =>
    exists(kind, namespace, name) || `${kind}/${namespace}/${name}` === 'Service/other/cart';
  const grant = (
    namespace: string,
    from: { group: string; kind: string; namespace: string },
    to: { group: string; kind: string; name?: string },
  ) => ({ metadata: { namespace, name: 'g' }, spec: { from: [from], to: [to] } });
  const httpFromShop = { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' };
  for (const [grants, reason] of [
    [[grant('other', httpFromShop, { group: '', kind: 'Service' })], 'ResolvedRefs'],
    [[grant('other', httpFromShop, { group: '', kind: 'Service', name: 'cart' })], 'ResolvedRefs'],
    [[grant('other', httpFromShop, { group: '', kind: 'Service', name: 'till' })], 'RefNotPermitted'],
    [
      [grant('other', { ...httpFromShop, kind: 'GRPCRoute' }, { group: '', kind: 'Service' })],
      'RefNotPermitted',
    ],
    [
      [grant('other', { ...httpFromShop, namespace: 'web' }, { group: '', kind: 'Service' })],
      'RefNotPermitted',
    ],
    [[grant('shop', httpFromShop, { group: '', kind: 'Service' })], 'RefNotPermitted'],
  ] as const) {
    const { routes, statuses } = compileRoutes(crossNamespace, known, grants);
    const status = reason === 'ResolvedRefs' ? 'True' : 'False';
    assert.deepEqual(conditions(statuses), [['Accepted=True/Accepted', `ResolvedRefs=${status}/${reason}`]]);
    assert.equal(routes[0]!.rules[0]!.backends[0]!.resolved, reason === 'ResolvedRefs');
  }
});

test('a route with a regular expression that is not one is not accepted, and says where it is', () => {
  const { routes, statuses } = compileRoutes(
    [
      route({
        parentRefs: [{ name: 'public', namespace: 'edge' }],
        rules: [
          {
            matches: [{ path: { type: 'RegularExpression', value: '/(' } }],
            backendRefs: [{ name: 'cart' }],
          },
        ],
      }),
    ],
    exists,
  );
  assert.deepEqual(conditions(statuses), [
    ['Accepted=False/UnsupportedValue', 'ResolvedRefs=True/ResolvedRefs'],
  ]);
  assert.match(
    statuses.get('HTTPRoute/shop/r')![0]!.conditions[0]!.message,
    /spec\.rules\[0\]\.matches\[0\]\.path\.value/,
  );
  assert.equal(routes.length, 0);
});
