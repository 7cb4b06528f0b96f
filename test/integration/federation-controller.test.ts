// The federation-controller process: signs workload certificates for its cluster and
// follows the trust bundle over real NATS, refusing a forged one.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { stringify } from 'yaml';
import { CertificateRenewer } from '@causeway/identity';
import { createRootCa, signTrustBundle, TrustDirectory, verifySvid } from '@causeway/pki';
import { repoRoot, startKubeControlPlane, startNats, type NatsServer } from '@causeway/testing';
import { CatalogSync, type MergedService } from '@causeway/catalog';
import { CatalogBus } from '@causeway/nats';
import { CoreV1Api } from '@kubernetes/client-node';
import { NatsTrustStore } from '@causeway/trust';
import { controllerSettings, initTrust } from '../support/controller-process.ts';
import { createServiceExport } from '../support/kube-objects.ts';

const run = promisify(execFile);
const main = path.join(repoRoot, 'apps/federation-controller/src/main.ts');
const TD = 'mesh.test';
const TOKEN = 'east-join-token-0123456789';

let nats: NatsServer;
let dir: string;

function settings(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...controllerSettings({
      directory: new TrustDirectory(dir),
      cluster: 'east',
      trustDomain: TD,
      stateDir: path.join(dir, 'state-east'),
      natsUrl: nats.url,
      token: TOKEN,
    }),
    signing: {
      address: '127.0.0.1:0',
      workloadTtl: '1h',
      joinTokens: [{ token: TOKEN, namespaces: ['shop'], serviceAccounts: ['*'] }],
    },
    statusInterval: '200ms',
    ...overrides,
  };
}

async function writeSettings(name: string, value: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, stringify(value));
  return file;
}

before(async () => {
  nats = await startNats();
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-controller-'));
  await initTrust(dir, TD, ['east'], nats.url);
});

after(async () => {
  await nats?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('federation-controller', () => {
  test('signs a workload certificate, follows NATS, counts a forged bundle, stops on SIGTERM', async () => {
    const child: ChildProcess = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        main,
        '--config',
        await writeSettings('east', settings()),
        '--admin-address',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const logs: Array<Record<string, unknown>> = [];
    const waitForLog = (msg: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const found = logs.find((entry) => entry.msg === msg);
        if (found) return resolve(found);
        const timer = setTimeout(
          () => reject(new Error(`no '${msg}' log; got ${JSON.stringify(logs)}`)),
          15_000,
        );
        lines.on('line', () => {
          const entry = logs.find((e) => e.msg === msg);
          if (entry) {
            clearTimeout(timer);
            resolve(entry);
          }
        });
      });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
    try {
      const signing = String((await waitForLog('signing and discovery service listening')).signing);
      const admin = String((await waitForLog('started')).admin);
      await waitForLog('following trust updates over NATS');

      const directory = new TrustDirectory(dir);
      const root = await directory.activeRoot();
      const renewer = new CertificateRenewer({
        controllerUrl: signing,
        bootstrapRoots: [root.certificatePem],
        trustDomain: TD,
        cluster: 'east',
        namespace: 'shop',
        serviceAccount: 'cart',
        instance: 'cart-0',
        token: () => TOKEN,
        onCredentials: () => {},
      });
      const credentials = await renewer.start();
      await renewer.stop();
      const chain = credentials.certificateChainPem.match(
        /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
      )!;
      const identity = verifySvid({
        chain: chain.map((pem) => new X509Certificate(pem)),
        roots: [root.certificate],
        trustDomain: TD,
      });
      assert.equal(identity.spiffeId.uri, `spiffe://${TD}/ns/shop/sa/cart`);
      assert.equal(identity.cluster, 'east');

      // The signing and the discovery APIs are plugins on the controller's one server, each
      // answering its own errors as { code, message }.
      const call = (route: string, body: unknown) =>
        new Promise<{ status: number; answer: { code?: string; message?: string } }>((resolve, reject) => {
          const request = https.request(
            `${signing}${route}`,
            {
              method: 'POST',
              ca: root.certificatePem,
              key: credentials.privateKeyPem,
              cert: credentials.certificateChainPem,
              // (The controller's certificate names its SPIFFE ID, not an address.)
              checkServerIdentity: () => undefined,
              headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
            },
            (response) => {
              let text = '';
              response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
              response.on('end', () => resolve({ status: response.statusCode!, answer: JSON.parse(text) }));
            },
          );
          request.on('error', reject).end(JSON.stringify(body));
        });
      const refusals = [
        ['/v1/discovery/stream', { kind: 'sidecar' }, 400, 'CAUSEWAY_DISCOVERY_BAD_REQUEST'],
        ['/v1/discovery/ack', { proxy: 'nobody', version: 1 }, 404, 'CAUSEWAY_DISCOVERY_UNKNOWN_PROXY'],
        ['/v1/certificates', { csr: 'x', admin: true }, 400, 'CAUSEWAY_IDENTITY_BAD_REQUEST'],
      ] as const;
      for (const [route, body, status, code] of refusals) {
        const { status: got, answer } = await call(route, body);
        assert.deepEqual([got, answer.code], [status, code], `${route}: ${JSON.stringify(answer)}`);
        assert.ok(answer.message, `${route}: no message`);
      }

      // A bundle signed by a root nobody trusts, written straight into NATS.
      const stranger = await createRootCa({ trustDomain: TD });
      const connection = await connect({ servers: nats.url });
      const store = await NatsTrustStore.open(connection);
      await store.putBundle(
        signTrustBundle(
          {
            trustDomain: TD,
            version: 50,
            issuedAt: new Date().toISOString(),
            roots: [stranger.certificatePem],
          },
          stranger,
        ),
      );
      let metrics = '';
      for (let i = 0; i < 50; i++) {
        metrics = await (await fetch(`${admin}/metrics`)).text();
        if (
          /causeway_trust_updates_rejected_total\{kind="bundle",reason="untrusted_signer"\} 1/.test(metrics)
        )
          break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(
        metrics,
        /causeway_trust_updates_rejected_total\{kind="bundle",reason="untrusted_signer"\} 1/,
      );
      assert.match(metrics, /causeway_trust_bundle_version 1/);
      // The intermediate expires in about a year (the CLI's default).
      const expiry = Number(
        /causeway_certificate_expiry_timestamp_seconds\{kind="intermediate"\} (\d+)/.exec(metrics)?.[1],
      );
      assert.ok(Math.abs(expiry - (Date.now() / 1000 + 365 * 86_400)) < 2 * 86_400, `expiry ${expiry}`);
      assert.match(metrics, /causeway_certificates_issued_total 1/);
      // The status record is published every 200 ms: wait for one made after the issuance.
      let issuedFromRoot: number | undefined;
      for (let i = 0; i < 50 && issuedFromRoot !== 1; i++) {
        issuedFromRoot = (await store.status('east'))?.workloads.byRoot[root.certificate.fingerprint256];
        if (issuedFromRoot !== 1) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(issuedFromRoot, 1);
      await connection.close();
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
  });

  test('with a catalog section, a ServiceExport becomes a signed record on NATS that other clusters accept', async () => {
    const cluster = await startKubeControlPlane({ name: 'east', serviceCidr: '10.96.0.0/16' });
    const kubeConfig = cluster.kubeConfig();
    await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'shop' } } });
    await kubeConfig.makeApiClient(CoreV1Api).createNamespacedService({
      namespace: 'shop',
      body: {
        metadata: { name: 'cart' },
        spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }], selector: { app: 'cart' } },
      },
    });
    await createServiceExport(kubeConfig, 'shop', 'cart');
    const config = settings({
      stateDir: path.join(dir, 'state-catalog'),
      signing: {
        address: '127.0.0.1:0',
        workloadTtl: '1h',
        joinTokens: [{ token: TOKEN, namespaces: ['*'], serviceAccounts: ['*'] }],
      },
      catalog: { kubeconfig: cluster.kubeconfigPath, gatewayAddresses: ['127.0.0.1:15443'] },
    });
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        main,
        '--config',
        await writeSettings('catalog', config),
        '--admin-address',
        '127.0.0.1:0',
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const connection = await connect({ servers: nats.url });
    try {
      const root = await new TrustDirectory(dir).activeRoot();
      let accepted: MergedService | undefined;
      const sync = new CatalogSync({
        trustDomain: TD,
        roots: () => [root.certificate],
        onCatalog: (catalog) => (accepted = catalog.get('shop/cart')),
      });
      await sync.attach(await CatalogBus.open(connection));
      for (let i = 0; i < 200 && !accepted; i++) await new Promise((r) => setTimeout(r, 100));
      sync.detach();
      assert.ok(accepted, 'no accepted record for shop/cart');
      assert.deepEqual(accepted.clusters, ['east']);
      assert.deepEqual(accepted.ports, [{ name: 'http', protocol: 'TCP', port: 80 }]);
    } finally {
      child.kill('SIGTERM');
      await connection.close();
    }
    assert.equal(await exited, 0);
    await cluster.dispose();
  });

  test('a settings file with a mistake is refused, naming the field', async () => {
    const bad = settings({ signing: { address: '127.0.0.1:0' }, cluster: 'East' });
    const result = await run(process.execPath, [
      '--import',
      'tsx',
      main,
      '--config',
      await writeSettings('bad', bad),
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /cluster: must be a DNS label .* \(got "East"\)/);
    assert.match(result.stderr, /signing: set exactly one of joinTokens \(file mode\) or kubeconfig/);
  });
});
