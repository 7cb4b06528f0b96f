import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CompiledGateway, CompiledRoute, ProxyConfig } from '@causeway/discovery';
import { changePath, redirectLocation } from './filters.ts';
import { RouteTable } from './route-table.ts';

const gateway = (
  listeners: Array<Partial<CompiledGateway['listeners'][number]> & { name: string }>,
): CompiledGateway => ({
  namespace: 'edge',
  name: 'public',
  listeners: listeners.map((l) => ({
    port: 80,
    protocol: 'HTTP',
    kinds: ['HTTPRoute', 'GRPCRoute'],
    namespaces: 'All',
    ...l,
  })),
});

const backend = (name: string) => ({
  kind: 'Service' as const,
  namespace: 'shop',
  name,
  port: 80,
  weight: 1,
  resolved: true,
  filters: [],
});

const route = (
  name: string,
  rules: Array<{ matches?: unknown[]; to: string }>,
  extra: Partial<CompiledRoute> = {},
  listeners = ['http'],
): CompiledRoute => ({
  kind: 'HTTPRoute',
  namespace: 'shop',
  name,
  hostnames: [],
  parents: [{ kind: 'Gateway', namespace: 'edge', name: 'public', listeners }],
  rules: rules.map((r) => ({ matches: r.matches ?? [], filters: [], backends: [backend(r.to)] })),
  ...extra,
});

const config = (routes: CompiledRoute[], gateways = [gateway([{ name: 'http' }])]): ProxyConfig => ({
  cluster: 'east',
  trustDomain: 'mesh.test',
  proxy: 'ingress',
  kind: 'ingress-gateway',
  trust: { bundleVersion: 1, bundleHash: 'h', roots: ['r'] },
  services: [],
  routes,
  policies: [],
  gateways,
});

const to = (
  table: RouteTable,
  target: string,
  request: {
    host?: string;
    method?: string;
    headers?: Record<string, string>;
    grpc?: boolean;
    port?: number;
  } = {},
) => {
  const decision = table.match(request.port ?? 80, {
    method: request.method ?? 'GET',
    target,
    host: request.host ?? 'shop.example.com',
    headers: request.headers ?? {},
    grpc: request.grpc ?? false,
  });
  return decision.type === 'matched' ? decision.entry.backends[0]!.name : decision.type;
};

test('HTTPRoute precedence: Exact, then RegularExpression, then the longest PathPrefix; method, headers and query break ties', () => {
  const table = RouteTable.compile(
    config([
      route('r', [
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }], to: 'root' },
        { matches: [{ path: { type: 'PathPrefix', value: '/a' } }], to: 'a' },
        { matches: [{ path: { type: 'PathPrefix', value: '/a/b/' } }], to: 'ab' },
        { matches: [{ path: { type: 'Exact', value: '/a/b' } }], to: 'exact' },
        { matches: [{ path: { type: 'RegularExpression', value: '/a/[0-9]+' } }], to: 'regex' },
        { matches: [{ path: { type: 'PathPrefix', value: '/m' }, method: 'POST' }], to: 'post' },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/m' }, headers: [{ name: 'X-One', value: '1' }] }],
          to: 'one',
        },
        {
          matches: [
            {
              path: { type: 'PathPrefix', value: '/m' },
              headers: [
                { name: 'x-one', value: '1' },
                { name: 'x-two', value: '2' },
              ],
            },
          ],
          to: 'two',
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/q' }, queryParams: [{ name: 'k', value: 'v' }] }],
          to: 'query',
        },
        { matches: [{ path: { type: 'PathPrefix', value: '/q' } }], to: 'q' },
      ]),
    ]),
  );
  const cases: Array<[string, Parameters<typeof to>[2], string]> = [
    ['/a/b', {}, 'exact'],
    ['/a/b/c', {}, 'ab'],
    ['/a/12', {}, 'regex'],
    ['/a/12/x', {}, 'a'],
    ['/ab', {}, 'root'],
    ['/a', {}, 'a'],
    ['/a/', {}, 'a'],
    ['/m', { method: 'POST', headers: { 'x-one': '1', 'x-two': '2' } }, 'post'],
    ['/m', { headers: { 'x-one': '1', 'x-two': '2' } }, 'two'],
    ['/m', { headers: { 'x-one': '1' } }, 'one'],
    ['/m', {}, 'root'],
    ['/q?k=v', {}, 'query'],
    ['/q?k=v&k=w', {}, 'query'],
    ['/q?k=w&k=v', {}, 'q'],
    ['/q?K=v', {}, 'q'],
  ];
  for (const [target, request, want] of cases)
    assert.equal(to(table, target, request), want, `${target} ${JSON.stringify(request)}`);
});

test('across routes: an older route wins, then the first by namespace/name, then the first rule', () => {
  const exact = [{ path: { type: 'Exact', value: '/x' } }];
  const table = RouteTable.compile(
    config([
      route('b', [{ matches: exact, to: 'b' }], { created: '2024-01-01T00:00:00.000Z' }),
      route('a', [{ matches: exact, to: 'a' }], { created: '2024-01-02T00:00:00.000Z' }),
    ]),
  );
  assert.equal(to(table, '/x'), 'b');
  const sameAge = RouteTable.compile(
    config([
      route('b', [{ matches: exact, to: 'b' }], { created: '2024-01-01T00:00:00.000Z' }),
      route(
        'a',
        [
          { matches: exact, to: 'a1' },
          { matches: exact, to: 'a2' },
        ],
        { created: '2024-01-01T00:00:00.000Z' },
      ),
    ]),
  );
  assert.equal(to(sameAge, '/x'), 'a1');
});

test('hostnames: exact before wildcard (even with a longer path), wildcards need a label, and a listener hostname narrows routes', () => {
  const table = RouteTable.compile(
    config([
      route('exact', [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], to: 'exact' }], {
        hostnames: ['a.example.com'],
      }),
      route('wild', [{ matches: [{ path: { type: 'PathPrefix', value: '/long/path' } }], to: 'wild' }], {
        hostnames: ['*.example.com'],
      }),
      route('any', [{ to: 'any' }]),
    ]),
  );
  assert.equal(to(table, '/long/path', { host: 'a.example.com' }), 'exact');
  assert.equal(to(table, '/long/path', { host: 'b.a.example.com' }), 'wild');
  assert.equal(to(table, '/long/path', { host: 'example.com' }), 'any');
  assert.equal(to(table, '/other', { host: 'b.example.com' }), 'any');

  const narrowed = RouteTable.compile(
    config(
      [
        route('wild', [{ to: 'wild' }], { hostnames: ['*.example.com'] }),
        route('other', [{ to: 'other' }], { hostnames: ['x.example.org'] }),
      ],
      [gateway([{ name: 'http', hostname: 'api.example.com' }])],
    ),
  );
  assert.equal(to(narrowed, '/', { host: 'api.example.com' }), 'wild');
  assert.equal(to(narrowed, '/', { host: 'x.example.org' }), 'no-listener');
  assert.equal(to(narrowed, '/', { host: 'api.example.com', port: 8080 }), 'no-listener');
});

test('the most specific listener hostname on a port takes the request', () => {
  const table = RouteTable.compile(
    config(
      [
        route('one', [{ to: 'wild' }], {}, ['wild']),
        route('two', [{ to: 'exact' }], {}, ['exact']),
        route('three', [{ to: 'any' }], {}, ['any']),
      ],
      [
        gateway([
          { name: 'any' },
          { name: 'wild', hostname: '*.example.com' },
          { name: 'exact', hostname: 'a.example.com' },
        ]),
      ],
    ),
  );
  assert.equal(to(table, '/', { host: 'a.example.com' }), 'exact');
  assert.equal(to(table, '/', { host: 'b.example.com' }), 'wild');
  assert.equal(to(table, '/', { host: 'example.net' }), 'any');
});

test('GRPCRoute: exact service and method, service only, regular expressions; HTTP requests never match them', () => {
  const grpc = (name: string, rules: Array<{ matches?: unknown[]; to: string }>): CompiledRoute => ({
    ...route(name, rules),
    kind: 'GRPCRoute',
  });
  const table = RouteTable.compile(
    config([
      grpc('g', [
        { matches: [{ method: { service: 'pkg.Echo', method: 'Say' } }], to: 'say' },
        { matches: [{ method: { service: 'pkg.Echo' } }], to: 'echo' },
        {
          matches: [{ method: { type: 'RegularExpression', service: 'pkg\\..*', method: 'Get.*' } }],
          to: 'getters',
        },
      ]),
      route('h', [{ to: 'http' }]),
    ]),
  );
  assert.equal(to(table, '/pkg.Echo/Say', { grpc: true }), 'say');
  assert.equal(to(table, '/pkg.Echo/Other', { grpc: true }), 'echo');
  assert.equal(to(table, '/pkg.Store/GetItem', { grpc: true }), 'getters');
  assert.equal(to(table, '/pkg.Store/Put', { grpc: true }), 'http');
  assert.equal(to(table, '/pkg.Echo/Say'), 'http');
});

test('a bad regular expression never matches, and the rest of the table still works', () => {
  const table = RouteTable.compile(
    config([
      route('r', [
        { matches: [{ path: { type: 'RegularExpression', value: '/(' } }], to: 'broken' },
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }], to: 'root' },
      ]),
    ]),
  );
  assert.equal(to(table, '/('), 'root');
});

test('ten thousand routes: a request looks at its host and its path prefixes only', () => {
  const routes = Array.from({ length: 10_000 }, (_, i) =>
    route(`r${i}`, [{ matches: [{ path: { type: 'PathPrefix', value: `/svc${i}` } }], to: `b${i}` }]),
  );
  const table = RouteTable.compile(config(routes));
  assert.equal(to(table, '/svc9999/x'), 'b9999');
  assert.equal(to(table, '/svc1/x'), 'b1');
  assert.equal(to(table, '/svc10000'), 'no-route');
});

test('ReplacePrefixMatch keeps what follows the prefix, element by element', () => {
  const prefix = (path: string, from: string, value: string) =>
    changePath(path, { type: 'ReplacePrefixMatch', value }, from);
  assert.equal(prefix('/prefix/one/two', '/prefix/one', '/one'), '/one/two');
  assert.equal(prefix('/prefix/one/two', '/prefix/one', '/'), '/two');
  assert.equal(prefix('/prefix/one', '/prefix/one', '/'), '/');
  assert.equal(prefix('/prefix/one/', '/prefix/one/', '/new'), '/new/');
  assert.equal(prefix('/a', '/', '/b'), '/b/a');
  assert.equal(changePath('/x/y', { type: 'ReplaceFullPath', value: '/z' }, '/x'), '/z');
});

test('redirect Location: well-known ports are left out, others kept; a scheme alone takes its port', () => {
  const request = { scheme: 'http', host: 'shop.example.com', port: 8080, path: '/a', query: '?q=1' };
  assert.equal(
    redirectLocation({ statusCode: 302 }, request, undefined),
    'http://shop.example.com:8080/a?q=1',
  );
  assert.equal(
    redirectLocation({ scheme: 'https', statusCode: 301 }, request, undefined),
    'https://shop.example.com/a?q=1',
  );
  assert.equal(
    redirectLocation(
      { scheme: 'https', port: 8443, hostname: 'x.example.com', statusCode: 302 },
      request,
      undefined,
    ),
    'https://x.example.com:8443/a?q=1',
  );
  assert.equal(
    redirectLocation({ statusCode: 302 }, { ...request, port: 80 }, undefined),
    'http://shop.example.com/a?q=1',
  );
});
