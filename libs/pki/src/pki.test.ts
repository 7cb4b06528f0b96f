import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  bundleHash,
  createCsr,
  createRootCa,
  generateKeyPair,
  issueCertificate,
  issueComponentCertificate,
  issueIntermediateCa,
  issueWorkloadCertificate,
  loadCertificateAuthority,
  parseCsr,
  parseSpiffeId,
  PkiError,
  signTrustBundle,
  verifySvid,
  verifyTrustBundle,
  type CertificateAuthority,
  type KeyType,
} from './index.ts';
import type { PkiErrorCode } from './errors.ts';

const TD = 'causeway.test';
const HOUR = 3_600_000;

async function intermediateFor(
  root: CertificateAuthority,
  cluster: string,
  trustDomain = TD,
): Promise<CertificateAuthority> {
  const keys = await generateKeyPair();
  return loadCertificateAuthority(
    issueIntermediateCa(root, { trustDomain, cluster, publicKey: keys.publicKey }),
    keys.privateKey,
  );
}

const x509 = (pem: string): X509Certificate => new X509Certificate(pem);

function refusedWith(code: PkiErrorCode): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof PkiError, `expected a PkiError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

for (const keyType of ['ecdsa-p256', 'rsa-2048'] as KeyType[]) {
  test(`a ${keyType} root, a cluster intermediate and a workload SVID verify, with the specified extensions`, async () => {
    const root = await createRootCa({ trustDomain: TD, keyType });
    const east = await intermediateFor(root, 'east');
    const leafKeys = await generateKeyPair(keyType);
    const leaf = x509(
      issueWorkloadCertificate(east, {
        trustDomain: TD,
        namespace: 'shop',
        serviceAccount: 'cart',
        publicKey: leafKeys.publicKey,
      }),
    );
    assert.equal(leaf.ca, false);
    assert.equal(leaf.subjectAltName, `URI:spiffe://${TD}/ns/shop/sa/cart`);
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(east.certificate.ca, true);
    assert.equal(east.certificate.subjectAltName, `URI:spiffe://${TD}/cluster/east`);
    const lifetime = new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime();
    assert.ok(Math.abs(lifetime - 24 * HOUR - 60_000) < 2_000, `lifetime ${lifetime}`);
    const identity = verifySvid({
      chain: [leaf, east.certificate],
      roots: [root.certificate],
      trustDomain: TD,
    });
    assert.equal(identity.spiffeId.kind, 'workload');
    assert.equal(identity.cluster, 'east');
    assert.equal(identity.rootFingerprint, root.certificate.fingerprint256);
  });
}

describe('verifySvid refuses', async () => {
  const root = await createRootCa({ trustDomain: TD });
  const otherRoot = await createRootCa({ trustDomain: TD });
  const east = await intermediateFor(root, 'east');
  const west = await intermediateFor(root, 'west');
  const foreignEast = await intermediateFor(otherRoot, 'east');
  const keys = await generateKeyPair();
  const now = new Date();
  const leafWith = (
    uris: string[],
    options: { isCa?: boolean; from?: number; to?: number; issuer?: CertificateAuthority } = {},
  ) =>
    x509(
      issueCertificate(
        {
          subjectPublicKey: keys.publicKey,
          commonName: 'test',
          uris,
          isCa: options.isCa ?? false,
          notBefore: new Date(now.getTime() + (options.from ?? -HOUR)),
          notAfter: new Date(now.getTime() + (options.to ?? HOUR)),
        },
        options.issuer ?? east,
      ),
    );
  const cases: Array<[string, () => X509Certificate[], PkiErrorCode]> = [
    [
      'a foreign trust domain',
      () => [leafWith(['spiffe://elsewhere.test/ns/a/sa/b']), east.certificate],
      'CAUSEWAY_PKI_FOREIGN_TRUST_DOMAIN',
    ],
    [
      'two URI SANs',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`, `spiffe://${TD}/ns/a/sa/c`]), east.certificate],
      'CAUSEWAY_PKI_MULTIPLE_URI_SANS',
    ],
    [
      'a CA=true leaf',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`], { isCa: true }), east.certificate],
      'CAUSEWAY_PKI_LEAF_IS_CA',
    ],
    [
      'a non-spiffe URI',
      () => [leafWith(['https://example.test/ns/a/sa/b']), east.certificate],
      'CAUSEWAY_PKI_NOT_SPIFFE',
    ],
    ['no URI SAN', () => [leafWith([]), east.certificate], 'CAUSEWAY_PKI_NOT_SPIFFE'],
    [
      'an expired leaf',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`], { from: -2 * HOUR, to: -HOUR }), east.certificate],
      'CAUSEWAY_PKI_EXPIRED',
    ],
    [
      'a leaf not yet valid',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`], { from: HOUR, to: 2 * HOUR }), east.certificate],
      'CAUSEWAY_PKI_NOT_YET_VALID',
    ],
    [
      'an untrusted root',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`], { issuer: foreignEast }), foreignEast.certificate],
      'CAUSEWAY_PKI_UNTRUSTED_ROOT',
    ],
    [
      'west issuing an east-scoped identity',
      () => [
        leafWith([`spiffe://${TD}/cluster/east/federation-controller`], { issuer: west }),
        west.certificate,
      ],
      'CAUSEWAY_PKI_CLUSTER_MISMATCH',
    ],
    [
      'a chain whose intermediate did not sign the leaf',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`]), west.certificate],
      'CAUSEWAY_PKI_BAD_SIGNATURE',
    ],
    [
      'a leaf without its intermediate',
      () => [leafWith([`spiffe://${TD}/ns/a/sa/b`])],
      'CAUSEWAY_PKI_CLUSTER_MISMATCH',
    ],
  ];
  for (const [what, chain, code] of cases) {
    test(what, () => {
      assert.throws(
        () => verifySvid({ chain: chain(), roots: [root.certificate], trustDomain: TD, now }),
        refusedWith(code),
      );
    });
  }

  test('and accepts a component identity from its own cluster', () => {
    const controller = x509(
      issueComponentCertificate(east, {
        trustDomain: TD,
        cluster: 'east',
        component: 'federation-controller',
        publicKey: keys.publicKey,
      }),
    );
    const identity = verifySvid({
      chain: [controller, east.certificate],
      roots: [root.certificate],
      trustDomain: TD,
    });
    assert.equal(identity.spiffeId.kind, 'component');
  });
});

describe('certificate requests', () => {
  for (const keyType of ['ecdsa-p256', 'rsa-2048'] as KeyType[]) {
    test(`a ${keyType} CSR round-trips with its URI and key`, async () => {
      const keys = await generateKeyPair(keyType);
      const uri = `spiffe://${TD}/ns/shop/sa/cart`;
      const parsed = parseCsr(createCsr({ ...keys, uri }));
      assert.deepEqual(parsed.uris, [uri]);
      assert.ok(parsed.publicKey.equals(keys.publicKey));
    });
  }

  test('a CSR whose signature is not by its key is refused', async () => {
    const keys = await generateKeyPair();
    const other = await generateKeyPair();
    const forged = createCsr({
      privateKey: other.privateKey,
      publicKey: keys.publicKey,
      uri: `spiffe://${TD}/ns/a/sa/b`,
    });
    assert.throws(() => parseCsr(forged), refusedWith('CAUSEWAY_PKI_BAD_CSR'));
  });

  test('garbage is refused without a crash', () => {
    for (const input of [
      '',
      'hello',
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
      '-----BEGIN CERTIFICATE REQUEST-----\nMIIBIjANBgkq\n-----END CERTIFICATE REQUEST-----',
    ]) {
      assert.throws(() => parseCsr(input), refusedWith('CAUSEWAY_PKI_BAD_CSR'));
    }
  });
});

describe('trust bundles', async () => {
  const root = await createRootCa({ trustDomain: TD, name: 'root-1' });
  const next = await createRootCa({ trustDomain: TD, name: 'root-2' });
  const bundle = {
    trustDomain: TD,
    version: 2,
    issuedAt: new Date().toISOString(),
    roots: [root.certificatePem, next.certificatePem],
  };

  test('a bundle signed by a trusted root is accepted', () => {
    const accepted = verifyTrustBundle(signTrustBundle(bundle, root), [root.certificate], TD);
    assert.equal(accepted.roots.length, 2);
    assert.equal(bundleHash(accepted), bundleHash({ roots: [next.certificatePem, root.certificatePem] }));
  });

  test('tampered, unsigned, foreign-signed and wrong-domain bundles are refused', async () => {
    const stranger = await createRootCa({ trustDomain: TD });
    const signed = signTrustBundle(bundle, root);
    const attempts: unknown[] = [
      { ...signed, bundle: { ...bundle, roots: [...bundle.roots, stranger.certificatePem] } },
      { bundle },
      signTrustBundle(bundle, stranger),
      signTrustBundle({ ...bundle, trustDomain: 'other.test' }, root),
      { ...signed, signature: Buffer.from('nope').toString('base64') },
      'not json at all',
      null,
    ];
    for (const attempt of attempts) {
      assert.throws(
        () => verifyTrustBundle(attempt, [root.certificate], TD),
        refusedWith('CAUSEWAY_PKI_BAD_BUNDLE'),
      );
    }
  });
});

test('SPIFFE IDs are parsed strictly', () => {
  assert.deepEqual(parseSpiffeId('spiffe://td/ns/shop/sa/cart'), {
    uri: 'spiffe://td/ns/shop/sa/cart',
    trustDomain: 'td',
    kind: 'workload',
    namespace: 'shop',
    serviceAccount: 'cart',
  });
  assert.equal(parseSpiffeId('spiffe://td/cluster/east').kind, 'cluster');
  assert.equal(parseSpiffeId('spiffe://td/cluster/east/ingress-gateway').kind, 'component');
  for (const bad of [
    'http://td/ns/a',
    'spiffe://TD/ns/a',
    'spiffe://td',
    'spiffe://td/',
    'spiffe://td//a',
    'spiffe://td/a/../b',
    'spiffe://td/a?x=1',
    'spiffe://td/a%20b',
    'spiffe://td:443/a',
  ]) {
    assert.throws(() => parseSpiffeId(bad), refusedWith('CAUSEWAY_PKI_BAD_SPIFFE_ID'), bad);
  }
});

test('crafted subject alternative names are refused with a PkiError, never a crash', async () => {
  const root = await createRootCa({ trustDomain: TD });
  const east = await intermediateFor(root, 'east');
  const keys = await generateKeyPair();
  // Node prints such SANs quoted and escaped; a trailing backslash once broke the reader.
  for (const uris of [
    ['spiffe://causeway.test/ns/a/sa/b\\'],
    ['spiffe://causeway.test/ns/a/sa/b", URI:spiffe://causeway.test/ns/x/sa/y'],
    ['spiffe://causeway.test/ns/a/sa/b\\', 'spiffe://causeway.test/ns/x/sa/y'],
  ]) {
    const leaf = x509(
      issueCertificate(
        {
          subjectPublicKey: keys.publicKey,
          commonName: 'odd',
          uris,
          isCa: false,
          notBefore: new Date(Date.now() - HOUR),
          notAfter: new Date(Date.now() + HOUR),
        },
        east,
      ),
    );
    assert.throws(
      () => verifySvid({ chain: [leaf, east.certificate], roots: [root.certificate], trustDomain: TD }),
      (error: unknown) => error instanceof PkiError,
    );
  }
});
