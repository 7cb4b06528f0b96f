import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { derOf, forgeLayout, pemOf, signatureAlgorithm, signedStructure, spkiNode } from './asn1.ts';
import { children, readTlv, type Tlv } from './der.ts';
import { PkiError } from './errors.ts';
import { keyTypeOf } from './keys.ts';

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUBJECT_ALT_NAME = '2.5.29.17';
const placeholderKey = forge.pki.setRsaPublicKey(
  new forge.jsbn.BigInteger('3'),
  new forge.jsbn.BigInteger('3'),
);
const CRI_SPKI_INDEX = 2;

/** A PKCS#10 request for a certificate naming `uri`, signed by `privateKey` (proof of possession). */
export function createCsr(options: {
  privateKey: KeyObject;
  publicKey: KeyObject;
  uri: string;
  commonName?: string;
}): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = placeholderKey;
  csr.setSubject(options.commonName ? [{ shortName: 'CN', value: options.commonName }] : []);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: options.uri }] }],
    },
  ]);
  const info = forgeLayout.getCertificationRequestInfo(csr);
  (info.value as forge.asn1.Asn1[])[CRI_SPKI_INDEX] = spkiNode(options.publicKey);
  const algorithm = signatureAlgorithm(options.privateKey);
  const signature = sign('sha256', derOf(info), options.privateKey);
  return pemOf('CERTIFICATE REQUEST', derOf(signedStructure(info, algorithm, signature)));
}

/** What a verified CSR asks for. */
export interface ParsedCsr {
  readonly publicKey: KeyObject;
  /** URI SANs requested in the extensionRequest attribute. */
  readonly uris: readonly string[];
}

const oidAt = (buffer: Buffer, tlv: Tlv): string =>
  forge.asn1.derToOid(forge.util.createBuffer(buffer.subarray(tlv.valueStart, tlv.end).toString('binary')));

/**
 * Parses a PEM PKCS#10 request and verifies its self-signature with node:crypto. Anything
 * malformed, unsigned or signed by another key is refused with CAUSEWAY_PKI_BAD_CSR.
 */
export function parseCsr(pem: string): ParsedCsr {
  try {
    const match =
      /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(pem);
    if (!match) throw new Error('not a PEM CERTIFICATE REQUEST');
    const der = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) throw new Error('trailing bytes after the request');
    const [info, algorithm, signatureBits] = children(der, outer);
    if (!info || !algorithm || !signatureBits || signatureBits.tag !== 0x03)
      throw new Error('not a CertificationRequest');
    const infoFields = children(der, info);
    const spki = infoFields[CRI_SPKI_INDEX];
    if (!spki) throw new Error('no subjectPublicKeyInfo');
    const publicKey = createPublicKey({
      key: der.subarray(spki.start, spki.end),
      format: 'der',
      type: 'spki',
    });
    if (!keyTypeOf(publicKey)) throw new Error(`unsupported key type ${publicKey.asymmetricKeyType}`);
    const signature = der.subarray(signatureBits.valueStart + 1, signatureBits.end);
    if (!verify('sha256', der.subarray(info.start, info.end), publicKey, signature)) {
      throw new Error('the signature does not match the public key');
    }
    return { publicKey, uris: requestedUris(der, infoFields[3]) };
  } catch (error) {
    if (error instanceof PkiError && error.code === 'CAUSEWAY_PKI_BAD_CSR') throw error;
    throw new PkiError('CAUSEWAY_PKI_BAD_CSR', `bad certificate request: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** URI SANs from the `[0] attributes` of a CertificationRequestInfo. */
function requestedUris(der: Buffer, attributes: Tlv | undefined): string[] {
  if (!attributes || attributes.tag !== 0xa0) return [];
  const uris: string[] = [];
  for (const attribute of children(der, attributes)) {
    const [oid, values] = children(der, attribute);
    if (!oid || !values || oidAt(der, oid) !== EXTENSION_REQUEST) continue;
    for (const extensions of children(der, values)) {
      for (const extension of children(der, extensions)) {
        const parts = children(der, extension);
        if (oidAt(der, parts[0]!) !== SUBJECT_ALT_NAME) continue;
        const octets = parts[parts.length - 1]!;
        const names = readTlv(der, octets.valueStart);
        for (const name of children(der, names)) {
          // [6] IMPLICIT IA5String: uniformResourceIdentifier
          if (name.tag === 0x86) uris.push(der.subarray(name.valueStart, name.end).toString('latin1'));
        }
      }
    }
  }
  return uris;
}
