// The trust bundle travels over real NATS and only a signed, newer one is taken; a root
// rotation driven by `causeway trust rotate` runs while workloads in two clusters keep
// talking over mTLS, and not one request fails.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { CertificateRenewer, type WorkloadCredentials } from '@causeway/identity';
import {
  bundleHash,
  createRootCa,
  peerIdentity,
  signTrustBundle,
  TrustDirectory,
  type SignedTrustBundle,
  type VerifiedIdentity,
} from '@causeway/pki';
import { startNats, repoRoot, type NatsServer } from '@causeway/testing';
import { NatsTrustStore, startTrustController, type TrustController } from '@causeway/trust';

const run = promisify(execFile);
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const TD = 'mesh.test';
const JOIN_TOKEN = 'rotation-test-token';

let nats: NatsServer;
let dir: string;
let connection: NatsConnection;
let store: NatsTrustStore;
const controllers = new Map<string, TrustController>();
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
    listen: { host: '127.0.0.1', port: 0 },
    store,
    statusIntervalMs: 200,
    registry,
  });
  controllers.set(cluster, controller);
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

describe('root rotation under traffic', () => {
  test('causeway trust rotate completes while east calls west continuously, with 0 failed requests', async () => {
    const renewerFor = (
      cluster: string,
      serviceAccount: string,
      onCredentials: (c: WorkloadCredentials) => void,
    ) =>
      new CertificateRenewer({
        controllerUrl: controllers.get(cluster)!.url,
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

    // The server workload in west.
    let server: https.Server | undefined = undefined;
    const identities = new WeakMap<object, VerifiedIdentity>();
    const seen: VerifiedIdentity[] = [];
    const serverRenewer = renewerFor('west', 'catalog', (credentials) =>
      server?.setSecureContext({
        key: credentials.privateKeyPem,
        cert: credentials.certificateChainPem,
        ca: [...credentials.roots],
      }),
    );
    const first = await serverRenewer.start();
    server = https.createServer(
      {
        key: first.privateKeyPem,
        cert: first.certificateChainPem,
        ca: [...first.roots],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
      },
      (req, res) => {
        let identity = identities.get(req.socket);
        if (!identity) {
          identity = peerIdentity(req.socket as TLSSocket, {
            roots: serverRenewer.current()!.roots.map((pem) => new X509Certificate(pem)),
            trustDomain: TD,
          });
          identities.set(req.socket, identity);
          seen.push(identity);
        }
        res.end(`${identity.spiffeId.uri} via ${identity.cluster}`);
      },
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;

    // The client workload in east.
    let agent: https.Agent | undefined;
    const clientRenewer = renewerFor('east', 'frontend', (credentials) => {
      agent = new https.Agent({
        keepAlive: true,
        key: credentials.privateKeyPem,
        cert: credentials.certificateChainPem,
        ca: [...credentials.roots],
        checkServerIdentity: () => undefined,
      });
    });
    await clientRenewer.start();

    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        const request = https.get({ host: '127.0.0.1', port, path: '/', agent }, (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            if (response.statusCode === 200 && body === `spiffe://${TD}/ns/shop/sa/frontend via east`) ok++;
            else failures.push(`${response.statusCode} ${body}`);
            resolve();
          });
        });
        request.on('error', (error) => {
          failures.push(error.message);
          resolve();
        });
      });
    const traffic = (async () => {
      while (running) await Promise.all([one(), one(), one()]);
    })();

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
    await traffic;
    await clientRenewer.stop();
    await serverRenewer.stop();
    server.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));

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
    assert.equal(seen.at(-1)!.rootFingerprint, newRoot);
  });
});
