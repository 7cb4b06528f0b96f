// A sidecar's inbound listener admits only SVIDs of its trust domain: certificates that
// chain to the federation's root but break the SPIFFE rules (two URI SANs, a CA as leaf, a
// URI that is not SPIFFE, another trust domain) are refused as the TLS handshake completes,
// before a byte of HTTP is read or answered; each refusal is counted by reason.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { exportedService, LocalFederation, type SidecarProcess } from '@causeway/cli/local-federation';
import {
  DAY_MS,
  issueCertificate,
  issueWorkloadCertificate,
  privateKeyToPem,
  type CertificateAuthority,
} from '@causeway/pki';
import { eventually, startEnvironment, type Environment } from '@causeway/testing';

let env: Environment;
let dir: string;
let federation: LocalFederation;
let ledger: SidecarProcess;
let intermediate: CertificateAuthority;
let roots: string[];

before(async () => {
  env = await startEnvironment({ nats: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-inbound-identity-'));
  federation = await LocalFederation.start({ dir, natsUrl: env.nats!.url, clusters: ['east'] });
  await federation.apply('east', 'shop.yaml', exportedService('shop', 'ledger', 80, 'http'));
  ledger = (await federation.startSampleWorkload('east', 'shop', 'ledger', 'http')).sidecar;
  intermediate = await federation.trust.loadIntermediate('east');
  roots = [...(await federation.trust.readBundle()).bundle.roots];
});

after(async () => {
  await federation?.stop();
  await env?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** A certificate signed by east's real intermediate, shaped as told. */
function certificate(shape: { uris: string[]; isCa?: boolean }): { key: string; cert: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const leaf = issueCertificate(
    {
      subjectPublicKey: publicKey,
      commonName: 'shaped',
      uris: shape.uris,
      isCa: shape.isCa ?? false,
      ...(shape.isCa ? { pathLength: 0 } : {}),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + DAY_MS),
    },
    intermediate,
  );
  return { key: privateKeyToPem(privateKey), cert: `${leaf}${intermediate.certificatePem}` };
}

/** A valid SVID of the trust domain, `shop/web`, issued by east's intermediate. */
function validCredentials(): { key: string; cert: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const cert = issueWorkloadCertificate(intermediate, {
    trustDomain: federation.trustDomain,
    namespace: 'shop',
    serviceAccount: 'web',
    publicKey,
  });
  return { key: privateKeyToPem(privateKey), cert: `${cert}${intermediate.certificatePem}` };
}

/**
 * Connects with `credentials` (ALPN h2, as peers do), completes the handshake, sends the
 * HTTP/2 connection preface and an empty SETTINGS frame, and collects every byte that comes
 * back until the connection closes (an admitted client gets the server's SETTINGS).
 */
function handshake(
  credentials: { key: string; cert: string },
  alpn = 'h2',
): Promise<{ handshake: boolean; reply: Buffer }> {
  return new Promise((resolve) => {
    let done = false;
    const chunks: Buffer[] = [];
    const socket = tls.connect({
      host: '127.0.0.1',
      port: ledger.inboundPorts[0]!,
      ...credentials,
      ca: roots,
      ALPNProtocols: [alpn],
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.3',
    });
    socket.on('secureConnect', () => {
      done = true;
      socket.write(
        Buffer.concat([
          Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
          Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
        ]),
      );
      // An admitted client is not closed by the server: enough to see what it sends first.
      setTimeout(() => socket.destroy(), 500);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ handshake: done, reply: Buffer.concat(chunks) }));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

/** A GET over HTTP/2 with `credentials`: the status and body. */
function call(credentials: { key: string; cert: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${ledger.inboundPorts[0]!}`, {
      ...credentials,
      ca: roots,
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.3',
    });
    session.on('error', reject);
    const stream = session.request({ ':path': '/hello', ':authority': 'ledger.shop.svc.clusterset.local' });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    stream.on('error', reject);
  });
}

async function refusals(): Promise<Map<string, number>> {
  const text = await (await fetch(`${ledger.adminUrl}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^causeway_inbound_tls_refusals_total\{reason="([A-Z_]+)"\} (\d+)/gm))
    counts.set(match[1]!, Number(match[2]));
  return counts;
}

test('a valid SVID of the trust domain is answered over HTTP (the control case)', async () => {
  const { body } = await eventually(async () => {
    const result = await call(validCredentials());
    assert.equal(result.status, 200);
    return result;
  });
  assert.match(body, /spiffe:\/\/mesh\.local\/ns\/shop\/sa\/web/);
});

test('a client that offers only HTTP/1.1 is refused in the handshake and the sidecar keeps serving', async () => {
  const credentials = validCredentials();
  const refused = await handshake(credentials, 'http/1.1');
  assert.equal(refused.reply.length, 0, 'no byte may come back');
  const admitted = await handshake(credentials);
  assert.ok(admitted.reply.length > 0, 'an h2 client gets the server settings');
  const after = await call(credentials);
  assert.equal(after.status, 200, 'the sidecar stopped serving');
});

const td = 'mesh.local';
const shapes: Array<[string, { uris: string[]; isCa?: boolean }, string]> = [
  [
    'two URI SANs',
    { uris: [`spiffe://${td}/ns/shop/sa/web`, `spiffe://${td}/ns/shop/sa/admin`] },
    'CAUSEWAY_PKI_MULTIPLE_URI_SANS',
  ],
  ['a CA:TRUE leaf', { uris: [`spiffe://${td}/ns/shop/sa/web`], isCa: true }, 'CAUSEWAY_PKI_LEAF_IS_CA'],
  ['a URI that is not SPIFFE', { uris: ['https://web.shop.example/'] }, 'CAUSEWAY_PKI_NOT_SPIFFE'],
  [
    'a foreign trust domain',
    { uris: ['spiffe://other.example/ns/shop/sa/web'] },
    'CAUSEWAY_PKI_FOREIGN_TRUST_DOMAIN',
  ],
];

for (const [what, shape, reason] of shapes) {
  test(`a client certificate with ${what} is refused at the handshake: no HTTP answer, counted as ${reason}`, async () => {
    const before = (await refusals()).get(reason) ?? 0;
    const result = await handshake(certificate(shape));
    assert.ok(result.handshake, 'the TLS handshake completed on the client side');
    assert.equal(result.reply.length, 0, `no byte may come back, got ${result.reply.length}`);
    await eventually(async () => assert.equal((await refusals()).get(reason), before + 1));
  });
}
