import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import {
  createRootCa,
  generateKeyPair,
  issueComponentCertificate,
  issueIntermediateCa,
  loadCertificateAuthority,
} from '@causeway/pki';
import { MAX_WAITING_PER_CLUSTER } from './catalog-sync.ts';
import { CatalogSync, exportKey, signerKey, signExportRecord } from './index.ts';

const TD = 'mesh.test';

test("records that come before their cluster's signer are held, counted and bounded, then applied when it comes", async () => {
  const root = await createRootCa({ trustDomain: TD });
  const intermediateKeys = await generateKeyPair();
  const intermediate = loadCertificateAuthority(
    issueIntermediateCa(root, { trustDomain: TD, cluster: 'east', publicKey: intermediateKeys.publicKey }),
    intermediateKeys.privateKey,
  );
  const keys = await generateKeyPair();
  const certificate = new X509Certificate(
    issueComponentCertificate(intermediate, {
      trustDomain: TD,
      cluster: 'east',
      component: 'federation-controller',
      publicKey: keys.publicKey,
    }),
  );
  const east = { certificate, privateKey: keys.privateKey, chain: [certificate, intermediate.certificate] };
  const registry = new Registry();
  const sync = new CatalogSync({
    trustDomain: TD,
    roots: () => [root.certificate],
    onCatalog: () => {},
    registry,
  });
  const entry = (name: string) => {
    const record = {
      cluster: 'east',
      namespace: 'shop',
      name,
      type: 'ClusterSetIP' as const,
      sessionAffinity: 'None' as const,
      exportCreatedAt: '2026-11-01T10:00:00Z',
      ports: [{ name: 'http', protocol: 'TCP' as const, port: 80 }],
      revision: 1,
      gatewayAddresses: ['127.0.0.1:15443'],
      readyEndpoints: 1,
      identities: [`spiffe://${TD}/ns/shop/sa/${name}`],
    };
    return [exportKey('east', 'shop', name), JSON.stringify(signExportRecord(record, east))] as const;
  };
  const waitingMetric = async () =>
    (await registry.getSingleMetric('causeway_catalog_records_waiting')!.get()).values.find(
      (value) => value.labels.cluster === 'east',
    )?.value;

  // More than the bound, from a writer that makes up names: the list stops growing.
  for (let i = 0; i < MAX_WAITING_PER_CLUSTER + 5; i++) sync.onEntry(...entry(`svc-${i}`));
  // The same key again replaces its entry and takes no more room.
  sync.onEntry(...entry('svc-0'));
  assert.deepEqual(sync.waitingForSigner(), { east: MAX_WAITING_PER_CLUSTER });
  assert.equal(await waitingMetric(), MAX_WAITING_PER_CLUSTER);
  assert.equal((await sync.refusals()).waiting_full, 5);
  assert.equal(sync.state.live().length, 0);

  // The signer arrives: what waited is verified and applied; nothing waits any more.
  sync.onEntry(signerKey('east'), east.chain.map((c) => c.toString()).join(''));
  assert.deepEqual(sync.waitingForSigner(), {});
  assert.equal(await waitingMetric(), undefined);
  assert.equal(sync.state.live().length, MAX_WAITING_PER_CLUSTER);
});

test('the waiting list is bounded over all clusters too, in entries and in characters', async () => {
  const sync = new CatalogSync({
    trustDomain: TD,
    roots: () => [],
    onCatalog: () => {},
    waitingLimits: { perCluster: 3, total: 5, chars: 2_000 },
  });
  const unsigned = (cluster: string, name: string, padding = 0) =>
    [
      exportKey(cluster, 'shop', name),
      JSON.stringify({
        record: {
          cluster,
          namespace: 'shop',
          name,
          type: 'ClusterSetIP',
          sessionAffinity: 'None',
          exportCreatedAt: '2026-11-01T10:00:00Z',
          ports: [{ protocol: 'TCP', port: 80 }],
          revision: 1,
          gatewayAddresses: [],
          readyEndpoints: 0,
          identities: ['x'.repeat(padding)],
        },
        signer: 'f'.repeat(64),
        signature: 'c2ln',
      }),
    ] as const;
  // A writer making up cluster names: 3 per cluster, 5 in all.
  for (const cluster of ['ghost-a', 'ghost-b', 'ghost-c'])
    for (const name of ['one', 'two', 'three', 'four']) sync.onEntry(...unsigned(cluster, name));
  assert.deepEqual(sync.waitingForSigner(), { 'ghost-a': 3, 'ghost-b': 2 });
  assert.equal((await sync.refusals()).waiting_full, 7);
  // A big entry does not fit in what is left of the characters, even in place of a small one.
  const big = unsigned('ghost-a', 'one', 1_500);
  sync.onEntry(...big);
  assert.equal((await sync.refusals()).waiting_full, 8);
  assert.deepEqual(sync.waitingForSigner(), { 'ghost-a': 3, 'ghost-b': 2 });
});
