import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorize, type CallFacts } from './authz.ts';

const web: CallFacts = {
  principal: 'spiffe://mesh.test/ns/web/sa/frontend',
  namespace: 'web',
  cluster: 'west',
  method: 'GET',
  path: '/cart/items?x=1',
  headers: { 'x-team': 'blue' },
};

const policy = (name: string, action: 'ALLOW' | 'DENY', rules?: object[]) => ({
  name,
  spec: { action, rules },
});

test('no policy allows every authenticated caller', () => {
  assert.deepEqual(authorize([], web), { allowed: true });
});

test('DENY is evaluated first and wins over a matching ALLOW', () => {
  const decision = authorize(
    [policy('allow-all', 'ALLOW', [{}]), policy('deny-web', 'DENY', [{ from: [{ namespaces: ['web'] }] }])],
    web,
  );
  assert.deepEqual(decision, { allowed: false, policy: 'deny-web', reason: 'denied by a DENY policy' });
});

test('with an ALLOW policy present, a request no ALLOW matches is refused', () => {
  const allowShop = policy('allow-shop', 'ALLOW', [{ from: [{ namespaces: ['shop'] }] }]);
  assert.equal(authorize([allowShop], web).allowed, false);
  assert.equal(authorize([allowShop], { ...web, namespace: 'shop' }).allowed, true);
  assert.equal(authorize([policy('no-rules', 'ALLOW')], web).allowed, false);
  assert.equal(authorize([policy('no-rules', 'DENY')], web).allowed, true);
});

test('principals (with or without spiffe://, wildcards), clusters, paths, methods and headers', () => {
  const cases: Array<[object, boolean]> = [
    [{ from: [{ principals: ['spiffe://mesh.test/ns/web/sa/frontend'] }] }, true],
    [{ from: [{ principals: ['mesh.test/ns/web/sa/*'] }] }, true],
    [{ from: [{ principals: ['*/sa/backend'] }] }, false],
    [{ from: [{ clusters: ['west'] }] }, true],
    [{ from: [{ notClusters: ['west'] }] }, false],
    [{ to: [{ paths: ['/cart/*'], methods: ['GET'] }] }, true],
    [{ to: [{ paths: ['/cart/items'] }] }, true],
    [{ to: [{ paths: ['/cart/*'], notMethods: ['GET'] }] }, false],
    [{ when: [{ header: 'X-Team', values: ['blue'] }] }, true],
    [{ when: [{ header: 'x-team', notValues: ['blue'] }] }, false],
    [{ when: [{ header: 'x-missing', values: ['*'] }] }, false],
    [
      {
        from: [{ namespaces: ['shop'] }, { namespaces: ['web'] }],
        to: [{ methods: ['POST'] }, { methods: ['GET'] }],
      },
      true,
    ],
  ];
  for (const [rule, allowed] of cases)
    assert.equal(authorize([policy('p', 'ALLOW', [rule])], web).allowed, allowed, JSON.stringify(rule));
});

test('path case: each list is compared the way that refuses more', () => {
  const at = (path: string): CallFacts => ({ ...web, path });
  const denyAdmin = policy('deny-admin', 'DENY', [{ to: [{ paths: ['/admin', '/admin/*'] }] }]);
  for (const path of ['/admin', '/ADMIN', '/Admin/keys'])
    assert.equal(authorize([denyAdmin], at(path)).allowed, false, path);
  const allowPublic = policy('allow-public', 'ALLOW', [{ to: [{ paths: ['/public/*'] }] }]);
  assert.equal(authorize([allowPublic], at('/public/a')).allowed, true);
  assert.equal(authorize([allowPublic], at('/PUBLIC/a')).allowed, false);
  const denyAllButPublic = policy('deny-but-public', 'DENY', [{ to: [{ notPaths: ['/public/*'] }] }]);
  assert.equal(authorize([denyAllButPublic], at('/public/a')).allowed, true);
  assert.equal(authorize([denyAllButPublic], at('/PUBLIC/a')).allowed, false);
  const allowAllButAdmin = policy('allow-but-admin', 'ALLOW', [{ to: [{ notPaths: ['/admin/*'] }] }]);
  assert.equal(authorize([allowAllButAdmin], at('/books')).allowed, true);
  assert.equal(authorize([allowAllButAdmin], at('/ADMIN/x')).allowed, false);
});
