import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxyConfig } from '@causeway/discovery';
import { resolveDestination, targetsFor } from './routing.ts';

const CART = 'spiffe://mesh.test/ns/shop/sa/cart';

function config(backends: ProxyConfig['services'][number]['backends']): ProxyConfig {
  return {
    cluster: 'west',
    trustDomain: 'mesh.test',
    proxy: 'sidecar~shop~web',
    kind: 'sidecar',
    trust: { bundleVersion: 1, bundleHash: 'h', roots: ['pem'] },
    services: [
      {
        namespace: 'shop',
        name: 'cart',
        hostname: 'cart.shop.svc.clusterset.local',
        type: 'ClusterSetIP',
        ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
        backends,
        withdrawn: [],
      },
    ],
    routes: [],
    gateways: [],
    policies: [],
  };
}

const local = (identities: string[]) => ({
  kind: 'local' as const,
  cluster: 'west',
  identities,
  endpoints: [
    { address: '10.0.0.1', ready: true, ports: [{ name: 'http', port: 15006, protocol: 'TCP' }] },
    { address: '10.0.0.2', ready: false, ports: [{ name: 'http', port: 15006, protocol: 'TCP' }] },
  ],
});
const remote = (cluster: string, stale: boolean, identities = [CART]) => ({
  kind: 'remote' as const,
  cluster,
  identities,
  gatewayAddresses: [`${cluster}.example:15443`],
  readyEndpoints: 1,
  stale,
});

test('targets: ready local endpoints, then fresh clusters, then stale ones; a cluster-local name stays here', () => {
  const current = config([remote('south', true), local([CART]), remote('east', false)]);
  const destination = resolveDestination(current, 'cart.shop.svc.clusterset.local', 'web')!;
  const { local: here, remote: there } = targetsFor(
    current,
    { namespace: 'shop', name: 'cart', port: 80 },
    false,
  );
  assert.deepEqual(
    here.map((t) => `${t.host}:${t.port}`),
    ['10.0.0.1:15006'],
  );
  assert.deepEqual(
    there.map((t) => t.cluster),
    ['east', 'south'],
  );
  assert.equal(there[0]!.servername, 'outbound_.80_._.cart.shop.svc.clusterset.local');
  assert.equal(destination.localOnly, false);
  assert.equal(resolveDestination(current, 'cart.shop', 'web')!.localOnly, true);
  assert.deepEqual(targetsFor(current, { namespace: 'shop', name: 'cart', port: 80 }, true).remote, []);
});

test('a backend whose serving identities are not listed yet is no target (nothing could check who answers)', () => {
  const current = config([local([]), remote('east', false, [])]);
  const targets = targetsFor(current, { namespace: 'shop', name: 'cart', port: 80 }, false);
  assert.deepEqual(targets, { local: [], remote: [], all: [] });
});

test('answers are computed once per config: a new config is read afresh', () => {
  const first = config([local([CART])]);
  const backend = { namespace: 'shop', name: 'cart', port: 80 };
  assert.equal(targetsFor(first, backend, false), targetsFor(first, backend, false));
  const second = config([remote('east', false)]);
  assert.deepEqual(
    targetsFor(second, backend, false).remote.map((t) => t.cluster),
    ['east'],
  );
  assert.equal(resolveDestination(second, 'nothing.shop.svc.clusterset.local', 'web'), undefined);
});

test("a cluster-local name reaches this cluster's own Service, exported or not; a clusterset name only the clusterset", () => {
  const current = config([local([CART])]);
  const notes = {
    ...current.services[0]!,
    name: 'notes',
    hostname: 'notes.shop.svc.cluster.local',
    scope: 'cluster' as const,
  };
  // `cart` is imported from elsewhere only, and this cluster has a Service of that name too.
  const importedCart = { ...current.services[0]!, backends: [remote('east', false)] };
  const localCart = { ...notes, name: 'cart', hostname: 'cart.shop.svc.cluster.local' };
  const mixed: ProxyConfig = { ...current, services: [importedCart, notes, localCart] };
  assert.equal(resolveDestination(mixed, 'notes.shop.svc.cluster.local', 'web')?.service, notes);
  assert.equal(resolveDestination(mixed, 'notes', 'shop')?.service, notes);
  assert.equal(resolveDestination(mixed, 'notes.shop.svc.clusterset.local', 'web'), undefined);
  assert.equal(resolveDestination(mixed, 'cart.shop', 'web')?.service, localCart);
  assert.equal(resolveDestination(mixed, 'cart.shop.svc.clusterset.local', 'web')?.service, importedCart);
  // And the targets follow: this cluster's endpoints for the cluster-local name, the other
  // cluster for the clusterset name.
  const cart = { namespace: 'shop', name: 'cart', port: 80 };
  assert.deepEqual(
    targetsFor(mixed, cart, true).all.map((t) => `${t.cluster} ${t.host}`),
    ['west 10.0.0.1'],
  );
  assert.deepEqual(
    targetsFor(mixed, cart, false).all.map((t) => `${t.cluster} ${t.host}`),
    ['east east.example'],
  );
});
