import { sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError, splitPemCertificates, verifySvid } from '@causeway/pki';
import type { ExportedService } from './types.ts';

/**
 * One cluster's export of one service as carried over NATS: the MCS properties plus what
 * other clusters need to route to it. `revision` grows with every change of this record.
 */
export interface ExportRecord extends ExportedService {
  readonly revision: number;
  /** An explicit unexport: the only way a record is ever removed. */
  readonly tombstone?: boolean;
  /** `host:port` of the cluster's east-west gateway(s). */
  readonly gatewayAddresses: readonly string[];
  readonly readyEndpoints: number;
  /** SPIFFE IDs of the workloads that serve it. */
  readonly identities: readonly string[];
  readonly locality?: { readonly region?: string; readonly zone?: string };
}

/** A record with the signature of its cluster's controller. */
export interface SignedExportRecord {
  readonly record: ExportRecord;
  /** SHA-256 fingerprint of the controller certificate that signed. */
  readonly signer: string;
  readonly signature: string;
}

/** The bytes that are signed: every field, in a fixed order. */
export function canonicalRecordBytes(record: ExportRecord): Buffer {
  return Buffer.from(
    JSON.stringify([
      record.cluster,
      record.namespace,
      record.name,
      record.revision,
      record.tombstone === true,
      record.type,
      record.sessionAffinity,
      record.exportCreatedAt,
      record.ports.map((p) => [p.name ?? '', p.protocol, p.port, p.appProtocol ?? '']),
      record.gatewayAddresses,
      record.readyEndpoints,
      record.identities,
      record.locality?.region ?? '',
      record.locality?.zone ?? '',
    ]),
  );
}

/** Who signs catalog data: a controller certificate and its key. */
type CatalogSigner = { certificate: X509Certificate; privateKey: KeyObject };

/** The detached signature fields shared by records and heartbeats. */
function signatureOf(bytes: Buffer, signer: CatalogSigner): { signer: string; signature: string } {
  return {
    signer: signer.certificate.fingerprint256,
    signature: sign('sha256', bytes, signer.privateKey).toString('base64'),
  };
}

export function signExportRecord(record: ExportRecord, signer: CatalogSigner): SignedExportRecord {
  return { record, ...signatureOf(canonicalRecordBytes(record), signer) };
}

/** A controller certificate chain checked once: who it is and its key. */
export interface VerifiedSigner {
  readonly cluster: string;
  readonly fingerprint: string;
  readonly publicKey: KeyObject;
}

/**
 * Checks a controller's certificate chain: it must be `spiffe://<td>/cluster/<c>/
 * federation-controller`, issued by cluster c's intermediate, under a trusted root.
 */
export function verifySigner(
  chain: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  trustDomain: string,
  now?: Date,
): VerifiedSigner {
  const identity = verifySvid({ chain, roots, trustDomain, ...(now ? { now } : {}) });
  if (identity.spiffeId.kind !== 'component' || identity.spiffeId.component !== 'federation-controller') {
    throw new PkiError(
      'CAUSEWAY_PKI_CLUSTER_MISMATCH',
      `${identity.spiffeId.uri} is not a federation controller`,
    );
  }
  return { cluster: identity.cluster, fingerprint: chain[0]!.fingerprint256, publicKey: chain[0]!.publicKey };
}

/** Why a signed record was refused. */
export type RecordRefusal = 'malformed' | 'unknown_signer' | 'wrong_cluster' | 'bad_signature';

/**
 * Verifies a signed record against the known signers: the signer must be known, must be
 * the record's own cluster's controller (a cluster publishes only for itself), and the
 * signature must verify.
 */
/** `verifySigner` for a chain in PEM (as published under `signer.<cluster>`). */
export function verifySignerPem(
  chainPem: string,
  roots: readonly X509Certificate[],
  trustDomain: string,
): VerifiedSigner {
  return verifySigner(
    splitPemCertificates(chainPem).map((pem) => new X509Certificate(pem)),
    roots,
    trustDomain,
  );
}

/**
 * Whether `text` (a value read from the bucket) is `record` exactly, signed by `signer`: what
 * a controller checks of its own records when it repairs the bucket.
 */
export function storedAs(text: string, record: ExportRecord, signer: VerifiedSigner): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  const verdict = verifyExportRecord(parsed, new Map([[signer.fingerprint, signer]]));
  return verdict.ok && canonicalRecordBytes(verdict.record).equals(canonicalRecordBytes(record));
}

export function verifyExportRecord(
  signed: unknown,
  signers: ReadonlyMap<string, VerifiedSigner>,
): { ok: true; record: ExportRecord } | { ok: false; reason: RecordRefusal; detail: string } {
  if (!signed || typeof signed !== 'object')
    return { ok: false, reason: 'malformed', detail: 'not an object' };
  const candidate = signed as Partial<SignedExportRecord>;
  const record = candidate.record;
  if (!record || typeof candidate.signer !== 'string' || typeof candidate.signature !== 'string') {
    return { ok: false, reason: 'malformed', detail: 'unsigned or without a record' };
  }
  if (!isExportRecord(record))
    return { ok: false, reason: 'malformed', detail: 'the record has missing or mistyped fields' };
  const signer = signers.get(candidate.signer);
  if (!signer)
    return {
      ok: false,
      reason: 'unknown_signer',
      detail: `signer ${candidate.signer} is not a known controller`,
    };
  if (signer.cluster !== record.cluster) {
    return {
      ok: false,
      reason: 'wrong_cluster',
      detail: `cluster ${signer.cluster}'s controller signed a record claiming cluster ${record.cluster}`,
    };
  }
  if (
    !verify(
      'sha256',
      canonicalRecordBytes(record),
      signer.publicKey,
      Buffer.from(candidate.signature, 'base64'),
    )
  ) {
    return { ok: false, reason: 'bad_signature', detail: 'the signature does not verify' };
  }
  return { ok: true, record };
}

const isString = (value: unknown): value is string => typeof value === 'string';
const optionalString = (value: unknown): boolean => value === undefined || typeof value === 'string';

function isExportRecord(value: unknown): value is ExportRecord {
  const r = value as Record<string, unknown>;
  return (
    isString(r.cluster) &&
    isString(r.namespace) &&
    isString(r.name) &&
    Number.isSafeInteger(r.revision) &&
    (r.type === 'ClusterSetIP' || r.type === 'Headless') &&
    (r.sessionAffinity === 'None' || r.sessionAffinity === 'ClientIP') &&
    isString(r.exportCreatedAt) &&
    !Number.isNaN(Date.parse(r.exportCreatedAt)) &&
    Array.isArray(r.ports) &&
    r.ports.every(
      (p: Record<string, unknown>) =>
        p !== null &&
        typeof p === 'object' &&
        Number.isInteger(p.port) &&
        (p.port as number) > 0 &&
        (p.port as number) < 65536 &&
        (p.protocol === 'TCP' || p.protocol === 'UDP' || p.protocol === 'SCTP') &&
        optionalString(p.name) &&
        optionalString(p.appProtocol),
    ) &&
    Array.isArray(r.gatewayAddresses) &&
    r.gatewayAddresses.every(isString) &&
    Number.isInteger(r.readyEndpoints) &&
    Array.isArray(r.identities) &&
    r.identities.every(isString) &&
    (r.tombstone === undefined || typeof r.tombstone === 'boolean') &&
    (r.locality === undefined ||
      (r.locality !== null &&
        typeof r.locality === 'object' &&
        !Array.isArray(r.locality) &&
        optionalString((r.locality as Record<string, unknown>).region) &&
        optionalString((r.locality as Record<string, unknown>).zone)))
  );
}

/** A cluster's periodic sign of life. Silence never deletes anything; it only ages. */
export interface Heartbeat {
  readonly cluster: string;
  /** Grows with every heartbeat of this cluster (replays are ignored). */
  readonly sequence: number;
  readonly time: string;
  readonly gatewayAddresses: readonly string[];
}

export interface SignedHeartbeat {
  readonly heartbeat: Heartbeat;
  readonly signer: string;
  readonly signature: string;
}

const heartbeatBytes = (heartbeat: Heartbeat): Buffer =>
  Buffer.from(
    JSON.stringify([
      'heartbeat',
      heartbeat.cluster,
      heartbeat.sequence,
      heartbeat.time,
      heartbeat.gatewayAddresses,
    ]),
  );

export function signHeartbeat(heartbeat: Heartbeat, signer: CatalogSigner): SignedHeartbeat {
  return { heartbeat, ...signatureOf(heartbeatBytes(heartbeat), signer) };
}

/** Like records: a known signer of the heartbeat's own cluster, and a valid signature. */
export function verifyHeartbeat(
  signed: unknown,
  signers: ReadonlyMap<string, VerifiedSigner>,
): { ok: true; heartbeat: Heartbeat } | { ok: false; reason: RecordRefusal } {
  const candidate = signed as Partial<SignedHeartbeat> | null;
  const heartbeat = candidate?.heartbeat;
  if (
    !heartbeat ||
    typeof candidate.signer !== 'string' ||
    typeof candidate.signature !== 'string' ||
    !isString(heartbeat.cluster) ||
    !Number.isSafeInteger(heartbeat.sequence) ||
    !isString(heartbeat.time) ||
    !Array.isArray(heartbeat.gatewayAddresses) ||
    !heartbeat.gatewayAddresses.every(isString)
  ) {
    return { ok: false, reason: 'malformed' };
  }
  const signer = signers.get(candidate.signer);
  if (!signer) return { ok: false, reason: 'unknown_signer' };
  if (signer.cluster !== heartbeat.cluster) return { ok: false, reason: 'wrong_cluster' };
  if (
    !verify('sha256', heartbeatBytes(heartbeat), signer.publicKey, Buffer.from(candidate.signature, 'base64'))
  ) {
    return { ok: false, reason: 'bad_signature' };
  }
  return { ok: true, heartbeat };
}
