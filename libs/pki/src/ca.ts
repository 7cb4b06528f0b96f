import { X509Certificate, type KeyObject } from 'node:crypto';
import { issueCertificate } from './certificate.ts';
import { PkiError } from './errors.ts';
import { generateKeyPair, type KeyType } from './keys.ts';
import { clusterSpiffeId, componentSpiffeId, checkTrustDomain, workloadSpiffeId } from './spiffe.ts';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** Default lifetimes: root 10 years, cluster intermediate 1 year, workload 24 hours. */
export const DEFAULT_TTL_MS = {
  root: 3650 * DAY_MS,
  intermediate: 365 * DAY_MS,
  workload: 24 * HOUR_MS,
} as const;

/** Certificates start a minute in the past so that small clock skew does not refuse them. */
export const BACKDATE_MS = 60_000;

/** A CA able to sign: its certificate and private key. */
export interface CertificateAuthority {
  readonly certificatePem: string;
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
}

function validity(ttlMs: number, now: Date): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0)
    throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', `TTL must be positive, got ${ttlMs} ms`);
  return { notBefore: new Date(now.getTime() - BACKDATE_MS), notAfter: new Date(now.getTime() + ttlMs) };
}

export function loadCertificateAuthority(
  certificatePem: string,
  privateKey: KeyObject,
): CertificateAuthority {
  return { certificatePem, certificate: new X509Certificate(certificatePem), privateKey };
}

/** A self-signed root CA for a trust domain, with a new key. */
export async function createRootCa(options: {
  trustDomain: string;
  /** Distinguishes roots over rotations, e.g. `root-2`. */
  name?: string;
  keyType?: KeyType;
  ttlMs?: number;
  now?: Date;
}): Promise<CertificateAuthority> {
  const trustDomain = checkTrustDomain(options.trustDomain);
  const keys = await generateKeyPair(options.keyType);
  const certificatePem = issueCertificate(
    {
      subjectPublicKey: keys.publicKey,
      commonName: `Causeway ${options.name ?? 'root'} CA`,
      organization: trustDomain,
      uris: [],
      isCa: true,
      ...validity(options.ttlMs ?? DEFAULT_TTL_MS.root, options.now ?? new Date()),
    },
    { selfKey: keys.privateKey },
  );
  return loadCertificateAuthority(certificatePem, keys.privateKey);
}

/** A cluster's intermediate CA (`spiffe://<td>/cluster/<name>`, path length 0) for a given key. */
export function issueIntermediateCa(
  root: CertificateAuthority,
  options: { trustDomain: string; cluster: string; publicKey: KeyObject; ttlMs?: number; now?: Date },
): string {
  const uri = clusterSpiffeId(options.trustDomain, options.cluster);
  return issueCertificate(
    {
      subjectPublicKey: options.publicKey,
      commonName: `Causeway cluster ${options.cluster} CA`,
      organization: options.trustDomain,
      uris: [uri],
      isCa: true,
      pathLength: 0,
      ...validity(options.ttlMs ?? DEFAULT_TTL_MS.intermediate, options.now ?? new Date()),
    },
    root,
  );
}

/** A leaf SVID for any SPIFFE ID the caller has already authorized. */
export function issueLeafCertificate(
  issuer: CertificateAuthority,
  options: { uri: string; publicKey: KeyObject; commonName: string; ttlMs?: number; now?: Date },
): string {
  return issueCertificate(
    {
      subjectPublicKey: options.publicKey,
      commonName: options.commonName,
      uris: [options.uri],
      isCa: false,
      ...validity(options.ttlMs ?? DEFAULT_TTL_MS.workload, options.now ?? new Date()),
    },
    issuer,
  );
}

/** A workload SVID `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export function issueWorkloadCertificate(
  intermediate: CertificateAuthority,
  options: {
    trustDomain: string;
    namespace: string;
    serviceAccount: string;
    publicKey: KeyObject;
    ttlMs?: number;
    now?: Date;
  },
): string {
  return issueLeafCertificate(intermediate, {
    ...options,
    uri: workloadSpiffeId(options.trustDomain, options.namespace, options.serviceAccount),
    commonName: `${options.serviceAccount}.${options.namespace}`,
  });
}

/** A component SVID `spiffe://<td>/cluster/<cluster>/<component>` (controller, gateways). */
export function issueComponentCertificate(
  intermediate: CertificateAuthority,
  options: {
    trustDomain: string;
    cluster: string;
    component: string;
    publicKey: KeyObject;
    ttlMs?: number;
    now?: Date;
  },
): string {
  return issueLeafCertificate(intermediate, {
    ...options,
    uri: componentSpiffeId(options.trustDomain, options.cluster, options.component),
    commonName: `${options.component}.${options.cluster}`,
  });
}

/** Splits a PEM bundle into its certificates, in order. */
export function splitPemCertificates(pem: string): string[] {
  return (
    pem
      .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)
      ?.map((block) => (block.endsWith('\n') ? block : `${block}\n`)) ?? []
  );
}
