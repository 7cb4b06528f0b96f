import assert from 'node:assert/strict';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { before, describe, test } from 'node:test';
import {
  createRootCa,
  generateKeyPair,
  issueComponentCertificate,
  issueIntermediateCa,
  issueWorkloadCertificate,
  loadCertificateAuthority,
  PkiError,
  type CertificateAuthority,
} from '@causeway/pki';
import { signExportRecord, type ExportRecord } from './index.ts';
import { verifyExportRecord, verifySigner, type VerifiedSigner } from './records.ts';
import { CatalogState } from './state.ts';

const TD = 'mesh.test';

interface Controller {
  certificate: X509Certificate;
  privateKey: KeyObject;
  chain: X509Certificate[];
}

let root: CertificateAuthority;
const intermediates = new Map<string, CertificateAuthority>();
const controllers = new Map<string, Controller>();
const signers = new Map<string, VerifiedSigner>();

async function controllerOf(issuerCluster: string, claimedCluster: string): Promise<Controller> {
  const issuer = intermediates.get(issuerCluster)!;
  const keys = await generateKeyPair();
  const certificate = new X509Certificate(
    issueComponentCertificate(issuer, {
      trustDomain: TD,
      cluster: claimedCluster,
      component: 'federation-controller',
      publicKey: keys.publicKey,
    }),
  );
  return { certificate, privateKey: keys.privateKey, chain: [certificate, issuer.certificate] };
}

function record(overrides: Partial<ExportRecord> = {}): ExportRecord {
  return {
    cluster: 'east',
    namespace: 'shop',
    name: 'cart',
    type: 'ClusterSetIP',
    sessionAffinity: 'None',
    exportCreatedAt: '2026-11-01T10:00:00Z',
    ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
    revision: 1,
    gatewayAddresses: ['127.0.0.1:15443'],
    readyEndpoints: 2,
    identities: [`spiffe://${TD}/ns/shop/sa/cart`],
    ...overrides,
  };
}

before(async () => {
  root = await createRootCa({ trustDomain: TD });
  for (const cluster of ['east', 'west']) {
    const keys = await generateKeyPair();
    intermediates.set(
      cluster,
      loadCertificateAuthority(
        issueIntermediateCa(root, { trustDomain: TD, cluster, publicKey: keys.publicKey }),
        keys.privateKey,
      ),
    );
  }
  for (const cluster of ['east', 'west']) {
    const controller = await controllerOf(cluster, cluster);
    controllers.set(cluster, controller);
    const signer = verifySigner(controller.chain, [root.certificate], TD);
    signers.set(signer.fingerprint, signer);
  }
});

describe('signed export records', () => {
  test("a record signed by its own cluster's controller verifies", () => {
    const result = verifyExportRecord(signExportRecord(record(), controllers.get('east')!), signers);
    assert.deepEqual(result, { ok: true, record: record() });
  });

  test('refused: B claiming A, unsigned, tampered, unknown signer, malformed', async () => {
    const east = controllers.get('east')!;
    const west = controllers.get('west')!;
    const stranger = await controllerOf('east', 'east');
    const signed = signExportRecord(record(), east);
    const cases: Array<[string, unknown, string]> = [
      ["west's controller signing a record for east", signExportRecord(record(), west), 'wrong_cluster'],
      ['no signature', { record: record() }, 'malformed'],
      [
        'a changed field after signing',
        { ...signed, record: record({ readyEndpoints: 99 }) },
        'bad_signature',
      ],
      [
        'a changed gateway after signing',
        { ...signed, record: record({ gatewayAddresses: ['10.0.0.1:443'] }) },
        'bad_signature',
      ],
      ['a signer nobody announced', signExportRecord(record(), stranger), 'unknown_signer'],
      [
        'a port out of range',
        signExportRecord(record({ ports: [{ protocol: 'TCP', port: 70000 }] }), east),
        'malformed',
      ],
      ['an unknown type', { ...signed, record: { ...record(), type: 'LoadBalancer' } }, 'malformed'],
      // Signed, yet of the wrong types where the fields are optional.
      ...(
        [
          ['a port name that is a number', { ports: [{ name: 7, protocol: 'TCP', port: 80 }] }],
          ['a null port name', { ports: [{ name: null, protocol: 'TCP', port: 80 }] }],
          ['an appProtocol that is an object', { ports: [{ protocol: 'TCP', port: 80, appProtocol: {} }] }],
          ['a tombstone that is a string', { tombstone: 'yes' }],
          ['a locality that is a string', { locality: 'eu' }],
          ['a locality that is an array', { locality: ['eu'] }],
          ['a zone that is a number', { locality: { region: 'eu', zone: 3 } }],
        ] as Array<[string, Record<string, unknown>]>
      ).map(([what, fields]): [string, unknown, string] => [
        what,
        signExportRecord({ ...record(), ...fields } as ExportRecord, east),
        'malformed',
      ]),
      ['null', null, 'malformed'],
      ['a string', 'export me', 'malformed'],
      ['an array', [1, 2], 'malformed'],
    ];
    for (const [what, input, reason] of cases) {
      const result = verifyExportRecord(input, signers);
      assert.equal(result.ok, false, what);
      assert.equal((result as { reason: string }).reason, reason, what);
    }
  });

  test('only federation controllers of their own cluster can be signers', async () => {
    const impostor = await controllerOf('west', 'east');
    assert.throws(
      () => verifySigner(impostor.chain, [root.certificate], TD),
      (error: unknown) => {
        assert.ok(error instanceof PkiError);
        assert.equal(error.code, 'CAUSEWAY_PKI_CLUSTER_MISMATCH');
        return true;
      },
    );
    const keys = await generateKeyPair();
    const workload = new X509Certificate(
      issueWorkloadCertificate(intermediates.get('east')!, {
        trustDomain: TD,
        namespace: 'shop',
        serviceAccount: 'cart',
        publicKey: keys.publicKey,
      }),
    );
    assert.throws(
      () => verifySigner([workload, intermediates.get('east')!.certificate], [root.certificate], TD),
      /not a federation controller/,
    );
  });
});

describe('catalog state', () => {
  test('records apply in revision order; replays and older revisions are ignored', () => {
    const state = new CatalogState();
    assert.deepEqual(state.apply(record({ revision: 5 })), { applied: true, change: 'exported' });
    assert.deepEqual(state.apply(record({ revision: 5, readyEndpoints: 0 })), {
      applied: false,
      reason: 'stale_revision',
    });
    assert.deepEqual(state.apply(record({ revision: 3 })), { applied: false, reason: 'stale_revision' });
    assert.deepEqual(state.apply(record({ revision: 6, readyEndpoints: 3 })), {
      applied: true,
      change: 'updated',
    });
    assert.equal(state.live()[0]!.readyEndpoints, 3);
  });

  test('an unexport (tombstone) removes the service, and an older export cannot bring it back', () => {
    const state = new CatalogState();
    state.apply(record({ revision: 1 }));
    assert.deepEqual(state.apply(record({ revision: 2, tombstone: true })), {
      applied: true,
      change: 'unexported',
    });
    assert.deepEqual(state.live(), []);
    assert.deepEqual(state.apply(record({ revision: 1 })), { applied: false, reason: 'stale_revision' });
    assert.deepEqual(state.live(), []);
    assert.deepEqual(state.apply(record({ revision: 3 })), { applied: true, change: 'exported' });
    const restored = CatalogState.restore(state.snapshot());
    assert.deepEqual(restored.live(), state.live());
  });
});
