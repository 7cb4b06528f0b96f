// The trust bundle travels over real NATS and only a signed, newer one is taken; a root
// rotation driven by `causeway trust rotate` runs while workloads in two clusters keep
// talking over mTLS, and not one request fails.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { CertificateRenewer, type WorkloadCredentials } from '@causeway/identity';
import {
  bundleHash,
  createRootCa,
  issueCertificate,
  signTrustBundle,
  TrustDirectory,
  type SignedTrustBundle,
} from '@causeway/pki';
import { startNats, repoRoot, type NatsServer } from '@causeway/testing';
import { startControllerServer, type ControllerServer } from '@causeway/federation-controller/server';
import { NatsTrustStore, startTrustController, type TrustController } from '@causeway/trust';
import { runTraffic, WorkloadClient, WorkloadServer } from '../support/mtls-workloads.ts';

const run = promisify(execFile);
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const TD = 'mesh.test';
const JOIN_TOKEN = 'rotation-test-token';

let nats: NatsServer;
let dir: string;
let connection: NatsConnection;
let store: NatsTrustStore;
const controllers = new Map<string, TrustController>();
/** Each controller's HTTPS server (the signing API). */
const servers = new Map<string, ControllerServer>();
const registries = new Map<string, Registry>();

async function startController(cluster: string): Promise<TrustController> {
  const directory = new TrustDirectory(dir);
  const files = directory.clusterFiles(cluster);
  const registry = new Registry();
  registries.set(cluster, registry);
  const controller = await startTrustController({
    cluster,
    trustDomain: TD,
    intermediateCertificatePem: await readFile(files.certificate, 'utf8'),
    intermediateKeyPem: await readFile(files.privateKey, 'utf8'),
    bootstrapBundle: JSON.parse(await readFile(directory.bundleFile, 'utf8')) as SignedTrustBundle,
    stateDir: path.join(dir, 'state', cluster),
    proof: {
      kind: 'join-tokens',
      tokens: [{ token: JOIN_TOKEN, namespaces: ['*'], serviceAccounts: ['*'] }],
    },
    workloadTtlMs: 3_600_000,
    store,
    statusIntervalMs: 200,
    registry,
  });
  controllers.set(cluster, controller);
  servers.set(
    cluster,
    await startControllerServer({ trust: controller, listen: { host: '127.0.0.1', port: 0 } }),
  );
  return controller;
}

async function rejectedCount(cluster: string): Promise<number> {
  const metric = await registries
    .get(cluster)!
    .getSingleMetric('causeway_trust_updates_rejected_total')!
    .get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

before(async () => {
  nats = await startNats();
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-rotation-'));
  await run(process.execPath, [cli, 'trust', 'init', '--dir', dir, '--trust-domain', TD]);
  for (const cluster of ['east', 'west']) {
    await run(process.execPath, [cli, 'trust', 'issue-intermediate', '--dir', dir, '--cluster', cluster]);
  }
  await run(process.execPath, [cli, 'trust', 'publish', '--dir', dir, '--nats-url', nats.url]);
  connection = await connect({ servers: nats.url });
  store = await NatsTrustStore.open(connection);
  await startController('east');
  await startController('west');
});

after(async () => {
  for (const server of servers.values()) await server.close();
  for (const controller of controllers.values()) await controller.close();
  await connection?.close();
  await nats?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('trust bundle over NATS', () => {
  test('tampered, unsigned, foreign-signed and replayed bundles are ignored and counted', async () => {
    const east = controllers.get('east')!;
    const before = east.trust.bundle;
    const signed = JSON.parse(await readFile(path.join(dir, 'bundle.json'), 'utf8')) as SignedTrustBundle;
    const stranger = await createRootCa({ trustDomain: TD });
    const attempts = [
      JSON.stringify({
        ...signed,
        bundle: { ...signed.bundle, version: 99, roots: [...signed.bundle.roots, stranger.certificatePem] },
      }),
      JSON.stringify({ bundle: { ...signed.bundle, version: 99 } }),
      JSON.stringify(
        signTrustBundle({ ...signed.bundle, version: 99, roots: [stranger.certificatePem] }, stranger),
      ),
      'not json',
    ];
    const rejectedBefore = await rejectedCount('east');
    for (const attempt of attempts) await store.putRawBundle(attempt);
    // A replay of the current bundle is not news; it is ignored without counting.
    await store.putBundle(signed);
    for (let i = 0; i < 50 && (await rejectedCount('east')) < rejectedBefore + attempts.length; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await rejectedCount('east')) - rejectedBefore, attempts.length);
    assert.equal(bundleHash(east.trust.bundle), bundleHash(before));
    assert.equal(east.trust.bundle.version, before.version);
  });
});

describe('re-issued intermediates over NATS', () => {
  test('a crafted certificate for our key, from a stranger, is refused and the controller keeps working', async () => {
    const east = controllers.get('east')!;
    const before = east.trust.signingCa.certificate.fingerprint256;
    const stranger = await createRootCa({ trustDomain: TD });
    const crafted = issueCertificate(
      {
        subjectPublicKey: east.trust.signingCa.certificate.publicKey,
        commonName: 'crafted',
        // A SAN that once broke the reader, next to the right one.
        uris: [`spiffe://${TD}/cluster/east\\`, `spiffe://${TD}/cluster/east`],
        isCa: true,
        notBefore: new Date(Date.now() - 1_000),
        notAfter: new Date(Date.now() + 3_600_000),
      },
      stranger,
    );
    const rejectedBefore = await rejectedCount('east');
    await store.putIntermediate('east', crafted);
    await store.putIntermediate('east', 'not a certificate');
    for (let i = 0; i < 50 && (await rejectedCount('east')) < rejectedBefore + 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await rejectedCount('east')) - rejectedBefore, 2);
    assert.equal(east.trust.signingCa.certificate.fingerprint256, before);
    // Still signing: the status record keeps coming.
    const status = await store.status('east');
    assert.ok(status && Date.now() - new Date(status.time).getTime() < 2_000);
  });
});

describe('root rotation under traffic', () => {
  test('causeway trust rotate completes while east calls west continuously, with 0 failed requests', async () => {
    const renewerFor = (
      cluster: string,
      serviceAccount: string,
      onCredentials: (c: WorkloadCredentials) => void,
    ) =>
      new CertificateRenewer({
        controllerUrl: servers.get(cluster)!.url,
        bootstrapRoots: controllers.get(cluster)!.trust.bundle.roots,
        trustDomain: TD,
        cluster,
        namespace: 'shop',
        serviceAccount,
        instance: `${cluster}-${serviceAccount}`,
        token: () => JOIN_TOKEN,
        trustPollMs: 200,
        onCredentials,
      });

    const server = new WorkloadServer(TD);
    const serverRenewer = renewerFor('west', 'catalog', server.onCredentials);
    await serverRenewer.start();
    const port = await server.listen();
    const client = new WorkloadClient();
    const clientRenewer = renewerFor('east', 'frontend', client.onCredentials);
    await clientRenewer.start();

    let running = true;
    const traffic = runTraffic({
      client,
      port,
      expected: `spiffe://${TD}/ns/shop/sa/frontend via east`,
      keepGoing: () => running,
    });

    const rotate = spawn(
      process.execPath,
      [cli, 'trust', 'rotate', '--dir', dir, '--nats-url', nats.url, '--step-timeout', '60s'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let progress = '';
    rotate.stderr.setEncoding('utf8').on('data', (chunk: string) => (progress += chunk));
    const code = await new Promise<number | null>((resolve) => rotate.once('exit', resolve));
    // Keep the traffic going a little after the old root is gone.
    await new Promise((r) => setTimeout(r, 1_000));
    running = false;
    const { ok, failures } = await traffic;
    await clientRenewer.stop();
    await serverRenewer.stop();
    await server.close();

    assert.equal(code, 0, progress);
    assert.match(
      progress,
      /step 1\/4.*\n[\s\S]*step 2\/4[\s\S]*step 3\/4[\s\S]*step 4\/4[\s\S]*rotation done/,
    );
    assert.deepEqual(failures, [], `failed requests during rotation; progress:\n${progress}`);
    assert.ok(ok > 50, `only ${ok} requests completed`);

    const directory = new TrustDirectory(dir);
    const newRoot = (await directory.loadRoot('root-2')).certificate.fingerprint256;
    for (const [cluster, controller] of controllers) {
      assert.equal(
        controller.trust.bundle.roots.length,
        1,
        `${cluster} still trusts two roots (bundle v${controller.trust.bundle.version}); progress:\n${progress}`,
      );
      assert.equal(new X509Certificate(controller.trust.bundle.roots[0]!).fingerprint256, newRoot);
    }
    // The last connection the server saw was made with a certificate from the new root.
    assert.equal(server.identities.at(-1)!.rootFingerprint, newRoot);
  });
});
