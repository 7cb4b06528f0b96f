import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { IssuedCertificates, signingRoutes, type ProofMode } from '@causeway/identity';
import {
  generateKeyPair,
  issueComponentCertificate,
  loadCertificateAuthority,
  privateKeyToPem,
  type CertificateAuthority,
  type SignedTrustBundle,
} from '@causeway/pki';
import { ControllerTrust } from './controller-trust.ts';
import type { NatsTrustStore } from './nats-trust-store.ts';

export interface TrustControllerOptions {
  readonly cluster: string;
  readonly trustDomain: string;
  readonly intermediateCertificatePem: string;
  readonly intermediateKeyPem: string;
  readonly bootstrapBundle: SignedTrustBundle;
  readonly stateDir: string;
  readonly proof: ProofMode;
  readonly workloadTtlMs: number;
  /** NATS is optional: without it the controller serves its last-known-good state. */
  readonly store?: NatsTrustStore;
  readonly statusIntervalMs?: number;
  readonly registry?: Registry;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** The controller's own identity: it serves the signing API and signs catalog records. */
export interface ControllerIdentity {
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
  /** PEM: the controller certificate, then the cluster intermediate. */
  readonly chainPem: string;
}

/**
 * The running trust side of a federation controller: its trust state, its own identity,
 * and the signing routes, which the controller registers on the HTTPS server it owns.
 */
export interface TrustController {
  readonly trust: ControllerTrust;
  /** The current controller identity (re-issued when the intermediate changes and at half its life). */
  identity(): ControllerIdentity;
  /** The same identity as TLS material for the controller's HTTPS server (PEM). */
  servingTls(): { key: string; cert: string };
  /** Called after the controller identity was re-issued (a server sets its secure context anew). */
  onIdentity(listener: () => void): void;
  /** A fastify plugin: `POST /v1/certificates` and `GET /v1/trust` (see `signingRoutes`). */
  readonly routes: FastifyPluginAsync;
  close(): Promise<void>;
}

/** The controller's own serving identity, `…/cluster/<name>/federation-controller`. */
async function servingIdentity(
  intermediate: CertificateAuthority,
  trustDomain: string,
  cluster: string,
  keys: { privateKey: KeyObject; publicKey: KeyObject },
): Promise<{ key: string; cert: string }> {
  const cert = issueComponentCertificate(intermediate, {
    trustDomain,
    cluster,
    component: 'federation-controller',
    publicKey: keys.publicKey,
  });
  return { key: privateKeyToPem(keys.privateKey), cert: cert + intermediate.certificatePem };
}

/**
 * Starts the trust side of a controller: certificates are signed by the current
 * intermediate, handed out with the current bundle, recorded for rotation reports; when
 * NATS brings a new intermediate, the controller's own certificate follows.
 */
export async function startTrustController(options: TrustControllerOptions): Promise<TrustController> {
  const issued = new IssuedCertificates(path.join(options.stateDir, 'issued-certificates.json'));
  await issued.load();
  const intermediate = loadCertificateAuthority(
    options.intermediateCertificatePem,
    createPrivateKey(options.intermediateKeyPem),
  );
  const trust = new ControllerTrust({
    cluster: options.cluster,
    trustDomain: options.trustDomain,
    intermediate,
    bootstrapBundle: options.bootstrapBundle,
    stateDir: options.stateDir,
    workloads: () => issued.summary(),
    registry: options.registry,
    log: options.log,
  });
  await trust.restore();
  const servingKeys = await generateKeyPair();
  let serving = await servingIdentity(trust.signingCa, options.trustDomain, options.cluster, servingKeys);
  let servingFor = trust.signingCa.certificate.fingerprint256;
  const identityListeners: Array<() => void> = [];
  let renewal: NodeJS.Timeout | undefined;
  /** A new controller certificate (same key): after an intermediate change, and at half its life. */
  const reissue = async (): Promise<void> => {
    serving = await servingIdentity(trust.signingCa, options.trustDomain, options.cluster, servingKeys);
    scheduleRenewal();
    for (const listener of identityListeners) listener();
  };
  const scheduleRenewal = (): void => {
    if (renewal) clearTimeout(renewal);
    const certificate = new X509Certificate(serving.cert);
    const from = Date.parse(certificate.validFrom);
    const half = from + (Date.parse(certificate.validTo) - from) / 2;
    renewal = setTimeout(
      () => void reissue().catch(() => scheduleRenewal()),
      Math.max(1_000, half - Date.now()),
    );
    renewal.unref();
  };
  scheduleRenewal();
  trust.onChange(async () => {
    if (trust.signingCa.certificate.fingerprint256 === servingFor) return;
    servingFor = trust.signingCa.certificate.fingerprint256;
    await reissue();
  });
  if (options.store) await trust.attach(options.store, options.statusIntervalMs ?? 2_000);
  return {
    trust,
    identity: () => ({
      certificate: new X509Certificate(serving.cert),
      privateKey: servingKeys.privateKey,
      chainPem: serving.cert,
    }),
    servingTls: () => serving,
    onIdentity: (listener) => identityListeners.push(listener),
    routes: (app) =>
      signingRoutes(app, {
        trustDomain: options.trustDomain,
        cluster: options.cluster,
        intermediate: () => trust.signingCa,
        trustBundle: () => trust.bundle,
        proof: options.proof,
        workloadTtlMs: options.workloadTtlMs,
        registry: options.registry,
        issued,
      }),
    close: async () => {
      if (renewal) clearTimeout(renewal);
      trust.detach();
      await issued.flush().catch(() => {});
    },
  };
}
