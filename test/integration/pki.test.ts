// The trust CLI's certificates verify with the openssl command, and mTLS between them
// refuses every identity Causeway must refuse: in OpenSSL's handshake or in the SPIFFE
// check that follows it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import {
  createRootCa,
  generateKeyPair,
  issueCertificate,
  peerIdentity,
  PkiError,
  privateKeyToPem,
  TrustDirectory,
  type CertificateAuthority,
} from '@causeway/pki';
import { repoRoot } from '@causeway/testing';

const run = promisify(execFile);
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const TD = 'mesh.test';
const HOUR = 3_600_000;

async function causeway(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [cli, ...args]);
  return stdout;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-trust-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('causeway trust', () => {
  test('init, issue-intermediate and issue-workload produce chains that openssl verifies', async () => {
    const init = JSON.parse(await causeway('trust', 'init', '--dir', dir, '--trust-domain', TD, '--json'));
    assert.equal(init.trustDomain, TD);
    assert.equal(((await stat(init.root.privateKey)).mode & 0o777).toString(8), '600');
    for (const cluster of ['east', 'west']) {
      const issued = JSON.parse(
        await causeway('trust', 'issue-intermediate', '--dir', dir, '--cluster', cluster, '--json'),
      );
      assert.deepEqual(issued.certificateInfo.spiffeIds, [`spiffe://${TD}/cluster/${cluster}`]);
    }
    const workload = await causeway(
      'trust',
      'issue-workload',
      '--dir',
      dir,
      '--cluster',
      'east',
      '--namespace',
      'shop',
      '--service-account',
      'cart',
      '--json',
    );
    assert.doesNotMatch(workload, /PRIVATE KEY/);
    const { certificate, privateKey } = JSON.parse(workload) as { certificate: string; privateKey: string };
    assert.equal(((await stat(privateKey)).mode & 0o777).toString(8), '600');

    const bundlePem = path.join(dir, 'roots.pem');
    await run('sh', ['-c', `node ${cli} trust bundle --dir ${dir} > ${bundlePem}`]);
    const leafOnly = path.join(dir, 'leaf.pem');
    await run('sh', ['-c', `openssl x509 -in ${certificate} -out ${leafOnly}`]);
    const verified = await run('openssl', [
      'verify',
      '-CAfile',
      bundlePem,
      '-untrusted',
      path.join(dir, 'clusters/east/ca.crt'),
      leafOnly,
    ]);
    assert.match(verified.stdout, /: OK$/m);

    const leafText = (await run('openssl', ['x509', '-in', leafOnly, '-noout', '-text'])).stdout;
    assert.match(leafText, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(leafText, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
    assert.match(
      leafText,
      /Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
    );
    assert.match(leafText, new RegExp(`Subject Alternative Name:\\s+URI:spiffe://${TD}/ns/shop/sa/cart\\s`));
    assert.equal(leafText.match(/URI:/g)?.length, 1);
    const caText = (
      await run('openssl', ['x509', '-in', path.join(dir, 'clusters/east/ca.crt'), '-noout', '-text'])
    ).stdout;
    assert.match(caText, /CA:TRUE, pathlen:0/);
    assert.match(caText, /Certificate Sign, CRL Sign/);

    const inspected = JSON.parse(await causeway('trust', 'inspect', certificate, '--dir', dir, '--json'));
    assert.equal(inspected.verification.ok, true);
    assert.equal(inspected.verification.identity.cluster, 'east');
    assert.equal(inspected.certificates.length, 2);
  });

  test('each --ttl gives the certificate it issues that lifetime', async () => {
    const own = await mkdtemp(path.join(os.tmpdir(), 'causeway-trust-ttl-'));
    try {
      const lifetime = (info: { notBefore: string; notAfter: string }) =>
        Date.parse(info.notAfter) - Date.parse(info.notBefore);
      // Certificates are back-dated one minute for clock skew.
      const BACKDATE = 60_000;
      const init = JSON.parse(
        await causeway('trust', 'init', '--dir', own, '--trust-domain', TD, '--ttl', '30d', '--json'),
      );
      const root = new X509Certificate(await readFile(init.root.certificate));
      assert.equal(Date.parse(root.validTo) - Date.parse(root.validFrom), 30 * 24 * HOUR + BACKDATE);
      const intermediate = JSON.parse(
        await causeway(
          'trust',
          'issue-intermediate',
          '--dir',
          own,
          '--cluster',
          'east',
          '--ttl',
          '2h',
          '--json',
        ),
      );
      assert.equal(lifetime(intermediate.certificateInfo), 2 * HOUR + BACKDATE);
      const workload = JSON.parse(
        await causeway(
          ...['trust', 'issue-workload', '--dir', own, '--cluster', 'east'],
          ...['--namespace', 'shop', '--service-account', 'cart', '--ttl', '1h', '--json'],
        ),
      );
      assert.equal(lifetime(workload.certificateInfo), HOUR + BACKDATE);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  test('--key-type, inspect --dir, bundle --json, version --json and nats-config --operator-user each do what they say', async () => {
    const own = await mkdtemp(path.join(os.tmpdir(), 'causeway-trust-options-'));
    const other = await mkdtemp(path.join(os.tmpdir(), 'causeway-trust-other-'));
    try {
      // --key-type: the root, the intermediates and the workloads of the directory.
      const init = JSON.parse(
        await causeway(
          'trust',
          'init',
          '--dir',
          own,
          '--trust-domain',
          TD,
          '--key-type',
          'rsa-2048',
          '--json',
        ),
      );
      const intermediate = JSON.parse(
        await causeway('trust', 'issue-intermediate', '--dir', own, '--cluster', 'east', '--json'),
      );
      const workload = JSON.parse(
        await causeway(
          ...['trust', 'issue-workload', '--dir', own, '--cluster', 'east'],
          ...['--namespace', 'shop', '--service-account', 'cart', '--json'],
        ),
      );
      for (const file of [init.root.certificate, intermediate.certificate, workload.certificate])
        assert.equal(new X509Certificate(await readFile(file)).publicKey.asymmetricKeyType, 'rsa', file);
      // inspect --dir: verified against this directory's bundle, refused against another's.
      const inspected = JSON.parse(
        await causeway('trust', 'inspect', workload.certificate, '--dir', own, '--json'),
      );
      assert.equal(inspected.verification.ok, true);
      assert.equal(inspected.verification.identity.spiffeId.uri, `spiffe://${TD}/ns/shop/sa/cart`);
      await causeway('trust', 'init', '--dir', other, '--trust-domain', TD, '--json');
      const refused = await run(process.execPath, [
        ...[cli, 'trust', 'inspect', workload.certificate, '--dir', other, '--json'],
      ]).then(
        () => undefined,
        (error: { code: number; stdout: string }) => error,
      );
      assert.equal(refused?.code, 1, 'a chain from another root must exit 1');
      assert.equal(JSON.parse(refused.stdout).verification.ok, false);
      // bundle --json: the signed bundle as the directory holds it.
      assert.deepEqual(
        JSON.parse(await causeway('trust', 'bundle', '--dir', own, '--json')),
        JSON.parse(await readFile(path.join(own, 'bundle.json'), 'utf8')),
      );
      // version --json.
      const version = JSON.parse(await causeway('version', '--json'));
      assert.deepEqual(Object.keys(version).sort(), ['node', 'platform', 'version']);
      assert.equal(version.node, process.versions.node);
      // nats-config --operator-user: that user, its password file, in auth.conf; a cluster's name refused.
      const nats = await mkdtemp(path.join(os.tmpdir(), 'causeway-nats-config-'));
      const natsConfig = (operator: string) => [
        'nats-config',
        '--cluster',
        'east',
        '--out',
        nats,
        '--operator-user',
        operator,
      ];
      try {
        await causeway(...natsConfig('admin'), '--json');
        const password = (await readFile(path.join(nats, 'admin.password'), 'utf8')).trim();
        const authConf = await readFile(path.join(nats, 'auth.conf'), 'utf8');
        // The operator is named as asked, with a bcrypt hash of its password, never the password.
        assert.match(authConf, /user: "admin", password: "\$2[ab]\$11\$/);
        assert.ok(!authConf.includes(password), 'the password is in auth.conf');
        await assert.rejects(
          run(process.execPath, [cli, ...natsConfig('east')]),
          /may not be named like a cluster/,
        );
      } finally {
        await rm(nats, { recursive: true, force: true });
      }
    } finally {
      await rm(own, { recursive: true, force: true });
      await rm(other, { recursive: true, force: true });
    }
  });

  test('a bad option is refused naming it, and init never overwrites a root', async () => {
    await assert.rejects(
      run(process.execPath, [cli, 'trust', 'init', '--dir', dir, '--trust-domain', TD]),
      (error: { stderr: string }) => {
        assert.match(error.stderr, /already holds a trust root .* \(CAUSEWAY_PKI_BAD_INPUT\)/);
        return true;
      },
    );
    await assert.rejects(
      run(process.execPath, [
        cli,
        'trust',
        'issue-workload',
        '--dir',
        dir,
        '--cluster',
        'east',
        '--namespace',
        'Shop',
        '--service-account',
        'cart',
      ]),
      (error: { stderr: string }) => {
        assert.match(error.stderr, /namespace 'Shop' is not a DNS label/);
        return true;
      },
    );
    await assert.rejects(
      run(process.execPath, [
        cli,
        'trust',
        'issue-workload',
        '--dir',
        dir,
        '--cluster',
        'east',
        '--namespace',
        'a',
        '--service-account',
        'b',
        '--ttl',
        'soon',
      ]),
      (error: { stderr: string }) => {
        assert.match(error.stderr, /--ttl <duration>' argument 'soon' is invalid/);
        return true;
      },
    );
  });
});

describe('mTLS refuses', () => {
  let directory: TrustDirectory;
  let root: CertificateAuthority;
  let east: CertificateAuthority;
  let west: CertificateAuthority;
  let server: tls.Server;
  let port: number;
  const outcomes: string[] = [];

  before(async () => {
    directory = new TrustDirectory(dir);
    root = await directory.activeRoot();
    east = await directory.loadIntermediate('east');
    west = await directory.loadIntermediate('west');
    const serverKeys = await generateKeyPair();
    const serverCert = issueCertificate(
      {
        subjectPublicKey: serverKeys.publicKey,
        commonName: 'server',
        uris: [`spiffe://${TD}/ns/shop/sa/server`],
        isCa: false,
        notBefore: new Date(Date.now() - HOUR),
        notAfter: new Date(Date.now() + HOUR),
      },
      east,
    );
    server = tls.createServer(
      {
        key: privateKeyToPem(serverKeys.privateKey),
        cert: serverCert + east.certificatePem,
        ca: [root.certificatePem],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
      },
      (socket) => {
        try {
          const identity = peerIdentity(socket, { roots: [root.certificate], trustDomain: TD });
          outcomes.push(`accepted ${identity.spiffeId.uri}`);
          socket.end(`hello ${identity.spiffeId.uri} from ${identity.cluster}`);
        } catch (error) {
          outcomes.push(
            `refused ${error instanceof PkiError ? error.code + ' ' + error.message : String(error)}`,
          );
          socket.destroy();
        }
      },
    );
    server.on('tlsClientError', (error: NodeJS.ErrnoException) =>
      outcomes.push(`handshake ${error.code ?? error.message}`),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  async function call(key: KeyObject, chainPem: string): Promise<string> {
    return await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        key: privateKeyToPem(key),
        cert: chainPem,
        ca: [root.certificatePem],
        minVersion: 'TLSv1.3',
        // The server is identified by SPIFFE ID, not host name.
        checkServerIdentity: () => undefined,
      });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('end', () => (data ? resolve(data) : reject(new Error('closed without an answer'))));
      socket.on('close', () => (data ? resolve(data) : reject(new Error('closed without an answer'))));
      socket.on('error', reject);
    });
  }

  const leaf = async (
    issuer: CertificateAuthority,
    uris: string[],
    options: { isCa?: boolean; from?: number; to?: number } = {},
  ): Promise<{ key: KeyObject; chain: string }> => {
    const keys = await generateKeyPair();
    const pem = issueCertificate(
      {
        subjectPublicKey: keys.publicKey,
        commonName: 'client',
        uris,
        isCa: options.isCa ?? false,
        notBefore: new Date(Date.now() + (options.from ?? -HOUR)),
        notAfter: new Date(Date.now() + (options.to ?? HOUR)),
      },
      issuer,
    );
    return { key: keys.privateKey, chain: pem + issuer.certificatePem };
  };

  test('and accepts a good workload, telling the server its identity and cluster', async () => {
    const client = await leaf(west, [`spiffe://${TD}/ns/shop/sa/cart`]);
    const answer = await call(client.key, client.chain).catch(
      (error: Error) => `failed: ${error.message}; server: ${outcomes.join(', ')}`,
    );
    assert.equal(answer, `hello spiffe://${TD}/ns/shop/sa/cart from west`);
  });

  const otherRoot = createRootCa({ trustDomain: TD });
  const cases: Array<[string, () => Promise<{ key: KeyObject; chain: string }>, RegExp]> = [
    [
      'a foreign trust domain',
      () => leaf(east, ['spiffe://elsewhere.test/ns/shop/sa/cart']),
      /refused CAUSEWAY_PKI_FOREIGN_TRUST_DOMAIN/,
    ],
    [
      'two URI SANs',
      () => leaf(east, [`spiffe://${TD}/ns/a/sa/b`, `spiffe://${TD}/ns/a/sa/c`]),
      /refused CAUSEWAY_PKI_MULTIPLE_URI_SANS/,
    ],
    [
      'a CA=true leaf',
      () => leaf(east, [`spiffe://${TD}/ns/a/sa/b`], { isCa: true }),
      /refused CAUSEWAY_PKI_LEAF_IS_CA|handshake/,
    ],
    [
      'a non-spiffe URI',
      () => leaf(east, ['https://mesh.test/ns/a/sa/b']),
      /refused CAUSEWAY_PKI_NOT_SPIFFE/,
    ],
    [
      'an expired certificate',
      () => leaf(east, [`spiffe://${TD}/ns/a/sa/b`], { from: -2 * HOUR, to: -HOUR }),
      /handshake/,
    ],
    [
      'a certificate not yet valid',
      () => leaf(east, [`spiffe://${TD}/ns/a/sa/b`], { from: HOUR, to: 2 * HOUR }),
      /handshake/,
    ],
    [
      'a chain to an untrusted root',
      async () => {
        const foreignRoot = await otherRoot;
        const keys = await generateKeyPair();
        const { issueIntermediateCa, loadCertificateAuthority } = await import('@causeway/pki');
        const foreignEast = loadCertificateAuthority(
          issueIntermediateCa(foreignRoot, { trustDomain: TD, cluster: 'east', publicKey: keys.publicKey }),
          keys.privateKey,
        );
        return leaf(foreignEast, [`spiffe://${TD}/ns/shop/sa/cart`]);
      },
      /handshake/,
    ],
    [
      "cluster west's intermediate issuing an east-scoped identity",
      () => leaf(west, [`spiffe://${TD}/cluster/east/federation-controller`]),
      /refused CAUSEWAY_PKI_CLUSTER_MISMATCH/,
    ],
  ];
  for (const [what, make, expected] of cases) {
    test(what, async () => {
      const client = await make();
      const before = outcomes.length;
      await assert.rejects(call(client.key, client.chain));
      // The server's verdict arrives just after the client sees the failure.
      for (let i = 0; i < 50 && outcomes.length === before; i++) await new Promise((r) => setTimeout(r, 20));
      assert.match(outcomes.slice(before).join(' | '), expected);
    });
  }

  test('the intermediate certificates in the directory parse', async () => {
    const pem = await readFile(path.join(dir, 'clusters/west/ca.crt'), 'utf8');
    assert.equal(new X509Certificate(pem).ca, true);
  });
});
