import { createHash, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { PkiError } from './errors.ts';
import { keyTypeOf } from './keys.ts';

const { asn1 } = forge;

/** OIDs of the signature algorithms Causeway writes. */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';

/** Node Buffer <-> forge's binary strings. */
export const toBinary = (buffer: Buffer): string => buffer.toString('binary');
export const fromBinary = (binary: string): Buffer => Buffer.from(binary, 'binary');

/** The DER of a forge ASN.1 node, as a Buffer. */
export function derOf(node: forge.asn1.Asn1): Buffer {
  return fromBinary(asn1.toDer(node).getBytes());
}

/** A key's SubjectPublicKeyInfo as forge ASN.1 (works for EC keys, which forge cannot model). */
export function spkiNode(publicKey: KeyObject): forge.asn1.Asn1 {
  return asn1.fromDer(toBinary(publicKey.export({ type: 'spki', format: 'der' })));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bit string. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = spkiNode(publicKey);
  const bitString = (spki.value as forge.asn1.Asn1[])[1]!;
  // Drop the leading "unused bits" byte of the BIT STRING.
  const keyBytes = fromBinary(bitString.value as string).subarray(1);
  return createHash('sha1').update(keyBytes).digest();
}

/** The AlgorithmIdentifier for signing with `privateKey` (SHA-256). */
export function signatureAlgorithm(privateKey: KeyObject): forge.asn1.Asn1 {
  const type = keyTypeOf(privateKey);
  if (type === 'ecdsa-p256') {
    return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(ECDSA_WITH_SHA256).getBytes()),
    ]);
  }
  if (type === 'rsa-2048') {
    return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SHA256_WITH_RSA).getBytes()),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
    ]);
  }
  throw new PkiError(
    'CAUSEWAY_PKI_BAD_INPUT',
    `cannot sign with a ${privateKey.asymmetricKeyType} key; use ECDSA P-256 or RSA >= 2048`,
  );
}

/**
 * `SEQUENCE { toBeSigned, algorithm, BIT STRING signature }`: the shape of both an X.509
 * certificate and a PKCS#10 request. The signature is made by node:crypto (OpenSSL).
 */
export function signedStructure(
  toBeSigned: forge.asn1.Asn1,
  algorithm: forge.asn1.Asn1,
  signature: Buffer,
): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    toBeSigned,
    algorithm,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\u0000' + toBinary(signature)),
  ]);
}

export function pemOf(label: 'CERTIFICATE' | 'CERTIFICATE REQUEST', der: Buffer): string {
  const body = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** forge functions that exist at run time but are missing from @types/node-forge. */
export const forgeLayout = forge.pki as unknown as {
  getTBSCertificate(certificate: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(request: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};
