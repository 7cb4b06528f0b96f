// The controller's signing service against a real kube-apiserver (TokenReview), and
// certificate renewal under continuous mTLS traffic.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import {
  buildSigningService,
  CertificateRenewer,
  type ProofMode,
  type WorkloadCredentials,
} from '@causeway/identity';
import { TokenReviewVerifier } from '@causeway/identity/token-review';
import {
  createCsr,
  createRootCa,
  generateKeyPair,
  issueComponentCertificate,
  issueIntermediateCa,
  loadCertificateAuthority,
  privateKeyToPem,
  verifySvid,
  workloadSpiffeId,
  type CertificateAuthority,
  type TrustBundle,
} from '@causeway/pki';
import { startKubeControlPlane, type KubeControlPlane } from '@causeway/testing';
import { runTraffic, WorkloadClient, WorkloadServer } from '../support/mtls-workloads.ts';

const TD = 'mesh.test';

interface Controller {
  url: string;
  root: CertificateAuthority;
  close(): Promise<void>;
}

async function startSigning(
  proof: ProofMode,
  workloadTtlMs = 3_600_000,
  /** `west` plays an attacker: east's controller identity minted by west's intermediate. */
  servingCertFrom: 'east' | 'west' = 'east',
): Promise<Controller> {
  const root = await createRootCa({ trustDomain: TD });
  const keys = await generateKeyPair();
  const intermediate = loadCertificateAuthority(
    issueIntermediateCa(root, { trustDomain: TD, cluster: 'east', publicKey: keys.publicKey }),
    keys.privateKey,
  );
  const westKeys = await generateKeyPair();
  const west = loadCertificateAuthority(
    issueIntermediateCa(root, { trustDomain: TD, cluster: 'west', publicKey: westKeys.publicKey }),
    westKeys.privateKey,
  );
  const servingIssuer = servingCertFrom === 'east' ? intermediate : west;
  const serviceKeys = await generateKeyPair();
  const serviceCert = issueComponentCertificate(servingIssuer, {
    trustDomain: TD,
    cluster: 'east',
    component: 'federation-controller',
    publicKey: serviceKeys.publicKey,
  });
  const bundle: TrustBundle = {
    trustDomain: TD,
    version: 1,
    issuedAt: new Date().toISOString(),
    roots: [root.certificatePem],
  };
  const { app } = buildSigningService({
    trustDomain: TD,
    cluster: 'east',
    intermediate: () => intermediate,
    trustBundle: () => bundle,
    proof,
    workloadTtlMs,
    tls: { key: privateKeyToPem(serviceKeys.privateKey), cert: serviceCert + servingIssuer.certificatePem },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `https://127.0.0.1:${port}`, root, close: () => app.close() };
}

async function post(
  controller: Controller,
  token: string | undefined,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const request = https.request(
      `${controller.url}/v1/certificates`,
      {
        method: 'POST',
        ca: controller.root.certificatePem,
        checkServerIdentity: () => undefined,
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

async function csrFor(namespace: string, serviceAccount: string): Promise<string> {
  const keys = await generateKeyPair();
  return createCsr({ ...keys, uri: workloadSpiffeId(TD, namespace, serviceAccount) });
}

describe('signing service with TokenReview (real kube-apiserver)', () => {
  let cluster: KubeControlPlane;
  let controller: Controller;
  let frontendToken: string;
  let otherAudienceToken: string;

  before(async () => {
    cluster = await startKubeControlPlane({ name: 'east', serviceCidr: '10.96.0.0/16', installCrds: false });
    const kubeConfig = cluster.kubeConfig();
    const core = kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'shop' } } });
    await core.createNamespacedServiceAccount({
      namespace: 'shop',
      body: { metadata: { name: 'frontend' } },
    });
    const token = await core.createNamespacedServiceAccountToken({
      name: 'frontend',
      namespace: 'shop',
      body: { spec: { audiences: ['causeway'], expirationSeconds: 600 } },
    });
    frontendToken = token.status!.token!;
    const other = await core.createNamespacedServiceAccountToken({
      name: 'frontend',
      namespace: 'shop',
      body: { spec: { audiences: ['someone-else'], expirationSeconds: 600 } },
    });
    otherAudienceToken = other.status!.token!;
    controller = await startSigning({ kind: 'token-review', verifier: new TokenReviewVerifier(kubeConfig) });
  });
  after(async () => {
    await controller?.close();
    await cluster?.dispose();
  });

  test('a token for shop/frontend gets a certificate for exactly that identity', async () => {
    const { status, json } = await post(controller, frontendToken, { csr: await csrFor('shop', 'frontend') });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.spiffeId, `spiffe://${TD}/ns/shop/sa/frontend`);
    const chain = (json.certificateChain as string).match(
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
    )!;
    const identity = verifySvid({
      chain: chain.map((pem) => new X509Certificate(pem)),
      roots: [controller.root.certificate],
      trustDomain: TD,
    });
    assert.equal(identity.cluster, 'east');
  });

  test('refusals: another service account, a forged token, no token, a bad CSR', async () => {
    const cases: Array<[string, string | undefined, unknown, number, string]> = [
      [
        'TokenReview for another service account',
        frontendToken,
        { csr: await csrFor('shop', 'payments') },
        403,
        'CAUSEWAY_IDENTITY_MISMATCH',
      ],
      [
        'another namespace',
        frontendToken,
        { csr: await csrFor('admin', 'frontend') },
        403,
        'CAUSEWAY_IDENTITY_MISMATCH',
      ],
      [
        'a forged token',
        frontendToken.slice(0, -6) + 'AAAAAA',
        { csr: await csrFor('shop', 'frontend') },
        403,
        'CAUSEWAY_IDENTITY_PROOF_REFUSED',
      ],
      [
        'a token for another audience',
        otherAudienceToken,
        { csr: await csrFor('shop', 'frontend') },
        403,
        'CAUSEWAY_IDENTITY_PROOF_REFUSED',
      ],
      ['no token', undefined, { csr: await csrFor('shop', 'frontend') }, 401, 'CAUSEWAY_IDENTITY_NO_PROOF'],
      ['a CSR that is not one', frontendToken, { csr: 'hello' }, 400, 'CAUSEWAY_PKI_BAD_CSR'],
      ['an unknown field', frontendToken, { csr: 'x', admin: true }, 400, 'CAUSEWAY_IDENTITY_BAD_REQUEST'],
    ];
    for (const [what, token, body, status, code] of cases) {
      const answer = await post(controller, token, body);
      assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.json)}`);
      assert.equal(answer.json.code, code, what);
    }
  });
});

describe('the renewer', () => {
  test("refuses a signing service whose certificate another cluster's intermediate minted", async () => {
    const token = 'join-token-for-this-test';
    const impostor = await startSigning(
      { kind: 'join-tokens', tokens: [{ token, namespaces: ['*'], serviceAccounts: ['*'] }] },
      60_000,
      'west',
    );
    const errors: string[] = [];
    let gotCertificate = false;
    const renewer = new CertificateRenewer({
      controllerUrl: impostor.url,
      bootstrapRoots: [impostor.root.certificatePem],
      trustDomain: TD,
      cluster: 'east',
      namespace: 'shop',
      serviceAccount: 'cart',
      instance: 'cart-0',
      token: () => token,
      onCredentials: () => (gotCertificate = true),
      onError: (error) => errors.push(error.message),
    });
    const started = renewer.start().catch(() => undefined);
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await renewer.stop();
    await started;
    await impostor.close();
    assert.equal(gotCertificate, false);
    assert.match(errors[0] ?? '', /scoped to cluster east but was issued by cluster west/);
  });
});

describe('renewal under traffic', () => {
  test('certificates roll over on both sides while requests flow, and none fails', async () => {
    const joinToken = 'join-me';
    const controller = await startSigning(
      { kind: 'join-tokens', tokens: [{ token: joinToken, namespaces: ['shop'], serviceAccounts: ['*'] }] },
      2_000,
    );
    const renewerFor = (serviceAccount: string, onCredentials: (c: WorkloadCredentials) => void) =>
      new CertificateRenewer({
        controllerUrl: controller.url,
        bootstrapRoots: [controller.root.certificatePem],
        trustDomain: TD,
        cluster: 'east',
        namespace: 'shop',
        serviceAccount,
        instance: `${serviceAccount}-0`,
        token: () => joinToken,
        jitter: 0.1,
        trustPollMs: 500,
        onCredentials,
      });

    const server = new WorkloadServer(TD);
    const serverRenewer = renewerFor('cart', server.onCredentials);
    await serverRenewer.start();
    const port = await server.listen();
    const client = new WorkloadClient();
    const clientRenewer = renewerFor('frontend', client.onCredentials);
    await clientRenewer.start();

    const deadline = Date.now() + 7_000;
    const { ok, failures } = await runTraffic({
      client,
      port,
      expected: `spiffe://${TD}/ns/shop/sa/frontend via east`,
      keepGoing: () => Date.now() < deadline,
      concurrency: 4,
    });
    await clientRenewer.stop();
    await serverRenewer.stop();
    await server.close();
    await controller.close();

    assert.deepEqual(failures, []);
    assert.ok(ok > 200, `only ${ok} requests completed`);
    // A 2 s TTL renewed at ~1 s: several certificates on each side in 7 s.
    const serials = new Set(server.identities.map((identity) => identity.serialNumber));
    assert.ok(serials.size >= 3, `server saw ${serials.size} client certificates`);
  });
});
