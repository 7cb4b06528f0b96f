// The east-west gateway as a process, with a real federation controller (file mode) and
// NATS: a connection whose SNI names an exported service is passed through, unterminated,
// to a ready local endpoint (the client sees the server's own SPIFFE identity); everything
// else reaches nothing. The probe target answers mTLS clients only.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { probeSni, REFUSAL_REASONS, serviceSni } from '@causeway/dataplane';
import { DiscoveryClient } from '@causeway/discovery';
import type { WorkloadCredentials } from '@causeway/identity';
import {
  createRootCa,
  generateKeyPair,
  issueIntermediateCa,
  issueWorkloadCertificate,
  loadCertificateAuthority,
} from '@causeway/pki';
import { eventually, startEnvironment, type Environment } from '@causeway/testing';
import {
  controllerSettings,
  initTrust,
  startComponentProcess,
  startControllerProcess,
  workloadCredentials,
  writeYaml,
  type ComponentProcess,
  type ControllerProcess,
} from '../support/controller-process.ts';
import { WorkloadServer } from '../support/mtls-workloads.ts';

const TD = 'mesh.test';
const TOKEN = 'east-west-join-token-0123456789';

let env: Environment;
let dir: string;
let controller: ControllerProcess;
let gateway: ComponentProcess;
let gatewayPort: number;
/** The shared gateway's settings. */
let gatewaySettings: Record<string, unknown>;
let backend: WorkloadServer;
let backendSidecar: DiscoveryClient;
let client: WorkloadCredentials;

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
spec:
  selector: { app: cart }
  ports: [{ name: https, port: 443 }]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: { name: cart, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: secret, namespace: shop }
spec:
  selector: { app: cart }
  ports: [{ name: https, port: 443 }]
`;

before(async () => {
  env = await startEnvironment({ nats: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-east-west-'));
  const trust = await initTrust(dir, TD, ['east'], env.nats!.url);
  const manifests = path.join(dir, 'manifests');
  await mkdir(manifests);
  await writeFile(path.join(manifests, 'shop.yaml'), SERVICES);
  controller = await startControllerProcess(
    await writeYaml(path.join(dir, 'controller.yaml'), {
      ...controllerSettings({
        directory: trust,
        cluster: 'east',
        trustDomain: TD,
        stateDir: path.join(dir, 'state-controller'),
        natsUrl: env.nats!.url,
        token: TOKEN,
      }),
      catalog: { directory: manifests, gatewayAddresses: ['127.0.0.1:15443'], heartbeatInterval: '300ms' },
    }),
  );
  await writeFile(path.join(dir, 'token'), TOKEN);
  gatewaySettings = {
    cluster: 'east',
    trustDomain: TD,
    controller: controller.signingUrl,
    trustBundle: trust.bundleFile,
    tokenFile: path.join(dir, 'token'),
    address: '127.0.0.1:0',
    maxConnectionsPerSource: 4,
  };
  gateway = await startComponentProcess(
    'east-west-gateway',
    await writeYaml(path.join(dir, 'gateway.yaml'), gatewaySettings),
  );
  const listening = await gateway.waitForLog('east-west gateway listening');
  gatewayPort = Number(String(listening.address).split(':').at(-1));

  // The backend: an mTLS server (what a sidecar's inbound listener is) for shop/cart,
  // registered as the workload behind both Services.
  const root = await trust.activeRoot();
  const credentialsFor = (account: string) =>
    workloadCredentials({
      signingUrl: controller.signingUrl,
      rootPem: root.certificatePem,
      trustDomain: TD,
      cluster: 'east',
      namespace: 'shop',
      serviceAccount: account,
      token: TOKEN,
    });
  const cart = await credentialsFor('cart');
  backend = new WorkloadServer(TD);
  backend.onCredentials(cart);
  const port = await backend.listen();
  backendSidecar = new DiscoveryClient({
    controllerUrl: controller.signingUrl,
    trustDomain: TD,
    cluster: 'east',
    proxy: 'sidecar~shop~cart-0',
    kind: 'sidecar',
    workload: {
      name: 'cart-0',
      labels: { app: 'cart' },
      address: '127.0.0.1',
      ports: [{ name: 'https', port, appPort: 443 }],
    },
    credentials: () => cart,
    onConfig: () => {},
  });
  await backendSidecar.start();
  client = await credentialsFor('web');
});

after(async () => {
  await backendSidecar?.stop();
  await backend?.close();
  await gateway?.stop();
  await controller?.stop();
  await env?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** One HTTPS GET through the gateway; resolves with the body or the error text. */
function call(options: {
  servername?: string;
  credentials?: { privateKeyPem: string; certificateChainPem: string } | undefined;
  path?: string;
  /** Another gateway's port (default: the one all tests share). */
  port?: number;
}): Promise<{ status?: number; body?: string; error?: string; peer?: string }> {
  return new Promise((resolve) => {
    const request = https.get(
      {
        host: '127.0.0.1',
        port: options.port ?? gatewayPort,
        path: options.path ?? '/',
        agent: false,
        ...(options.servername ? { servername: options.servername } : {}),
        ...(options.credentials
          ? { key: options.credentials.privateKeyPem, cert: options.credentials.certificateChainPem }
          : {}),
        ca: [...client.roots],
        checkServerIdentity: () => undefined,
      },
      (response) => {
        const socket = response.socket as tls.TLSSocket;
        const peer = socket.getPeerX509Certificate()?.subjectAltName;
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body, ...(peer ? { peer } : {}) }));
      },
    );
    request.setTimeout(5_000, () => request.destroy(new Error('timed out')));
    request.on('error', (error) => resolve({ error: error.message }));
  });
}

const cartSni = serviceSni({ namespace: 'shop', name: 'cart', port: 443 });

/** A mesh client's TLS connection through the gateway to shop/cart, once its handshake is done. */
async function cartConnection(port = gatewayPort): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: cartSni,
    key: client.privateKeyPem,
    cert: client.certificateChainPem,
    ca: [...client.roots],
    checkServerIdentity: () => undefined,
  });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  return socket;
}

async function refusals(): Promise<Record<string, number>> {
  const text = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^causeway_eastwest_refused_total\{reason="([a-z_]+)"\} (\d+)/gm))
    counts[match[1]!] = Number(match[2]);
  return counts;
}

test('SNI naming an exported service reaches its endpoint through, end to end: each side sees the other', async () => {
  const result = await eventually(async () => {
    const outcome = await call({ servername: cartSni, credentials: client });
    assert.equal(outcome.status, 200, JSON.stringify(outcome));
    return outcome;
  }, 30_000);
  assert.equal(result.body, `spiffe://${TD}/ns/shop/sa/web via east`);
  assert.match(result.peer!, new RegExp(`URI:spiffe://${TD}/ns/shop/sa/cart`));
});

test('unexported or unknown SNI, no SNI and malformed ClientHellos reach nothing', async () => {
  const seen = backend.identities.length;
  for (const servername of [
    serviceSni({ namespace: 'shop', name: 'secret', port: 443 }),
    serviceSni({ namespace: 'shop', name: 'cart', port: 8443 }),
    'cart.shop.svc.cluster.local',
  ]) {
    const outcome = await call({ servername, credentials: client });
    assert.ok(outcome.error, `${servername} got through: ${JSON.stringify(outcome)}`);
  }
  // Node sends no SNI when connecting to an IP address without a servername.
  assert.ok((await call({ credentials: client })).error);
  const plain = net.connect({ host: '127.0.0.1', port: gatewayPort });
  plain.write('GET / HTTP/1.1\r\nHost: cart\r\n\r\n');
  const closed = await new Promise<string>((resolve) => {
    let data = '';
    plain.on('data', (chunk) => (data += String(chunk)));
    plain.on('close', () => resolve(data));
  });
  assert.equal(closed, '', 'the gateway answered plain HTTP');
  // A ClientHello that claims 1 MiB.
  const huge = net.connect({ host: '127.0.0.1', port: gatewayPort });
  const record = Buffer.alloc(5 + 16_384);
  record.set([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x10, 0x00, 0x00]);
  huge.write(record);
  await new Promise((resolve) => huge.on('close', resolve).on('error', () => {}));
  assert.equal(backend.identities.length, seen, 'a refused connection reached the backend');
  const counts = await refusals();
  assert.equal(counts.not_exported, 3);
  assert.equal(counts.no_sni, 1);
  assert.equal(counts.malformed, 1);
  assert.equal(counts.oversized, 1);
  // Every reason is exported, from 0 before its first refusal (so a first refusal has a rate).
  assert.deepEqual(Object.keys(counts).sort(), [...REFUSAL_REASONS].sort());
});

test('a client without a mesh certificate, or with one from another root, is refused by the endpoint', async () => {
  const seen = backend.identities.length;
  assert.ok((await call({ servername: cartSni })).error, 'a client without a certificate got through');
  // Same trust domain, cluster and names, but a root nobody here trusts.
  const otherRoot = await createRootCa({ trustDomain: TD });
  const intermediateKeys = await generateKeyPair();
  const otherIntermediate = loadCertificateAuthority(
    issueIntermediateCa(otherRoot, {
      trustDomain: TD,
      cluster: 'east',
      publicKey: intermediateKeys.publicKey,
    }),
    intermediateKeys.privateKey,
  );
  const leafKeys = await generateKeyPair();
  const leaf = issueWorkloadCertificate(otherIntermediate, {
    trustDomain: TD,
    namespace: 'shop',
    serviceAccount: 'web',
    publicKey: leafKeys.publicKey,
  });
  const stranger = {
    privateKeyPem: leafKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificateChainPem: leaf + otherIntermediate.certificatePem,
  };
  const outcome = await call({ servername: cartSni, credentials: stranger });
  assert.ok(outcome.error, `a certificate from another root got through: ${JSON.stringify(outcome)}`);
  assert.equal(backend.identities.length, seen);
});

test('connections over the per-source limit are refused', async () => {
  const open: tls.TLSSocket[] = [];
  for (let i = 0; i < 4; i++) {
    open.push(await cartConnection());
  }
  const fifth = await call({ servername: cartSni, credentials: client });
  assert.ok(fifth.error, 'the fifth connection from one address got through');
  assert.equal((await refusals()).limit, 1);
  for (const socket of open) socket.destroy();
  await eventually(async () =>
    assert.equal((await call({ servername: cartSni, credentials: client })).status, 200),
  );
});

test('maxConnections caps all connections, and idleTimeoutSeconds closes idle ones', async () => {
  // A second gateway of the same cluster, with a small cap and a short idle timeout.
  const small = await startComponentProcess(
    'east-west-gateway',
    await writeYaml(path.join(dir, 'gateway-small.yaml'), {
      ...gatewaySettings,
      maxConnections: 2,
      maxConnectionsPerSource: 10,
      idleTimeoutSeconds: 1,
    }),
  );
  const open: tls.TLSSocket[] = [];
  try {
    const port = Number(
      String((await small.waitForLog('east-west gateway listening')).address)
        .split(':')
        .at(-1),
    );
    await eventually(async () => {
      const outcome = await call({ servername: cartSni, credentials: client, port });
      assert.equal(outcome.status, 200, JSON.stringify(outcome));
    }, 30_000);
    open.push(await cartConnection(port), await cartConnection(port));
    const third = await call({ servername: cartSni, credentials: client, port });
    assert.ok(third.error, `a third connection got through: ${JSON.stringify(third)}`);
    // Idle for a second, both are closed by the gateway.
    const started = Date.now();
    const idleMs = await Promise.race([
      Promise.all(open.map((socket) => new Promise((resolve) => socket.once('close', resolve)))).then(
        () => Date.now() - started,
      ),
      new Promise<number>((resolve) => setTimeout(() => resolve(-1), 10_000)),
    ]);
    assert.ok(
      idleMs >= 900 && idleMs < 5_000,
      `idle connections closed after ${idleMs} ms (-1: not within 10 s)`,
    );
    assert.equal((await call({ servername: cartSni, credentials: client, port })).status, 200);
  } finally {
    for (const socket of open) socket.destroy();
    await small.stop();
  }
});

test('the probe target answers mesh clients with the services it can reach, and nobody else', async () => {
  const probe = await call({ servername: probeSni('east'), credentials: client, path: '/probe' });
  assert.equal(probe.status, 200, JSON.stringify(probe));
  assert.deepEqual(JSON.parse(probe.body!), {
    cluster: 'east',
    configured: true,
    services: [{ namespace: 'shop', name: 'cart', readyEndpoints: 1 }],
  });
  assert.match(probe.peer!, new RegExp(`URI:spiffe://${TD}/ns/causeway-system/sa/east-west-gateway`));
  assert.ok(
    (await call({ servername: probeSni('east') })).error,
    'a probe without a certificate was answered',
  );
  assert.ok((await call({ servername: probeSni('west'), credentials: client })).error);
});

test('a ClientHello sent a byte at a time is cut off at the deadline, however busy the client looks', async () => {
  const started = Date.now();
  const slow = net.connect({ host: '127.0.0.1', port: gatewayPort });
  slow.on('error', () => {});
  // A handshake record announcing 256 bytes, then one byte every 100 ms (26 s in all).
  slow.write(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00]));
  const trickle = setInterval(() => slow.write(Buffer.from([0])), 100);
  await new Promise((resolve) => slow.once('close', resolve));
  clearInterval(trickle);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds < 8, `the connection stayed ${seconds} s`);
  assert.equal((await refusals()).timeout, 1);
});

test('connections to a service are closed when it is no longer exported', async () => {
  const socket = await cartConnection();
  const closed = new Promise((resolve) => socket.once('close', resolve));
  const manifest = path.join(dir, 'manifests', 'shop.yaml');
  await writeFile(manifest, SERVICES.replace(/apiVersion: multicluster[^]*?---\n/, ''));
  await Promise.race([
    closed,
    new Promise((_, reject) => setTimeout(() => reject(new Error('the connection stayed open')), 15_000)),
  ]);
  const logged = await gateway.waitForLog('closing connections to a service no longer exported');
  assert.equal(logged.service, 'shop/cart:443');
  // Exported again: new connections get through.
  await writeFile(manifest, SERVICES);
  await eventually(async () =>
    assert.equal((await call({ servername: cartSni, credentials: client })).status, 200),
  );
});
