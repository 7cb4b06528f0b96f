// A sidecar's inbound listener admits only SVIDs of its trust domain: certificates that
// chain to the federation's root but break the SPIFFE rules (two URI SANs, a CA as leaf, a
// URI that is not SPIFFE, another trust domain) are refused as the TLS handshake completes,
// before a byte of HTTP is read or answered; each refusal is counted by reason.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
 * Connects with `credentials`, completes the handshake, sends an HTTP/1.1 request and
 * collects what comes back until the connection closes.
 */
function call(credentials: { key: string; cert: string }): Promise<{ handshake: boolean; reply: string }> {
  return new Promise((resolve) => {
    let handshake = false;
    let reply = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      port: ledger.inboundPorts[0]!,
      ...credentials,
      ca: roots,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.3',
    });
    socket.on('secureConnect', () => {
      handshake = true;
      socket.write(
        'GET /hello HTTP/1.1\r\nhost: ledger.shop.svc.clusterset.local\r\nconnection: close\r\n\r\n',
      );
    });
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ handshake, reply }));
    socket.setTimeout(10_000, () => socket.destroy());
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
  const { reply } = await eventually(async () => {
    const result = await call(validCredentials());
    assert.match(result.reply, /^HTTP\/1\.1 200 /);
    return result;
  });
  assert.match(reply, /spiffe:\/\/mesh\.local\/ns\/shop\/sa\/web/);
});

test('an HTTP/1.1 CONNECT to the inbound port gets 405 and the sidecar keeps serving', async () => {
  const credentials = validCredentials();
  const reply = await new Promise<string>((resolve) => {
    let data = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      port: ledger.inboundPorts[0]!,
      ...credentials,
      ca: roots,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
    });
    socket.on('secureConnect', () => socket.write('CONNECT ledger:80 HTTP/1.1\r\nhost: ledger:80\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(data));
    socket.setTimeout(10_000, () => socket.destroy());
  });
  assert.match(reply, /^HTTP\/1\.1 405 /);
  const after = await call(credentials);
  assert.match(after.reply, /^HTTP\/1\.1 200 /, 'the sidecar stopped serving');
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
    const result = await call(certificate(shape));
    assert.equal(
      result.reply,
      '',
      `no byte of HTTP may come back, got ${JSON.stringify(result.reply.slice(0, 80))}`,
    );
    await eventually(async () => assert.equal((await refusals()).get(reason), before + 1));
  });
}
