import type { X509Certificate } from 'node:crypto';
import { randomBytes, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import {
  derOf,
  forgeLayout,
  keyIdentifier,
  pemOf,
  signatureAlgorithm,
  signedStructure,
  spkiNode,
  toBinary,
} from './asn1.ts';
import { PkiError } from './errors.ts';

/** What goes into a certificate Causeway issues. */
export interface CertificateTemplate {
  readonly subjectPublicKey: KeyObject;
  readonly commonName: string;
  readonly organization?: string;
  /** URI SANs (a SPIFFE ID; exactly one for SVIDs). */
  readonly uris: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly isCa: boolean;
  /** For CAs: how many CAs may follow below this one (0 for an intermediate that signs leaves). */
  readonly pathLength?: number;
}

/** Who signs: a CA's certificate and key, or nothing for a self-signed root. */
export interface Signer {
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
}

// forge needs a public key object to lay out the TBSCertificate; the real
// SubjectPublicKeyInfo (EC or RSA, from node:crypto) replaces it afterwards.
const placeholderKey = forge.pki.setRsaPublicKey(
  new forge.jsbn.BigInteger('3'),
  new forge.jsbn.BigInteger('3'),
);
const TBS_SIGNATURE_INDEX = 2;
const TBS_ISSUER_INDEX = 3;
const TBS_SUBJECT_INDEX = 5;
const TBS_SPKI_INDEX = 6;

function subjectAttributes(template: {
  commonName: string;
  organization?: string;
}): forge.pki.CertificateField[] {
  return [
    ...(template.organization ? [{ shortName: 'O', value: template.organization }] : []),
    { shortName: 'CN', value: template.commonName },
  ];
}

/**
 * Builds an X.509 v3 certificate with node-forge and signs its TBS bytes with node:crypto.
 * `signer` undefined makes a self-signed certificate with `selfKey`.
 */
export function issueCertificate(
  template: CertificateTemplate,
  signer: Signer | { selfKey: KeyObject },
): string {
  if (template.notAfter <= template.notBefore) {
    throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', 'notAfter must be later than notBefore');
  }
  const selfSigned = 'selfKey' in signer;
  const signingKey = selfSigned ? signer.selfKey : signer.privateKey;
  const algorithm = signatureAlgorithm(signingKey);
  const cert = forge.pki.createCertificate();
  cert.publicKey = placeholderKey;
  // Placeholder as well: the real AlgorithmIdentifier replaces it in the TBS below.
  cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption!;
  // 16 random bytes, first byte in 1..127: a positive serial of at most 20 octets
  // (RFC 5280 §4.1.2.2) whose DER INTEGER is minimal (no leading zero byte).
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f || 0x01;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = template.notBefore;
  cert.validity.notAfter = template.notAfter;
  cert.setSubject(subjectAttributes(template));
  cert.setIssuer(subjectAttributes(template));
  const subjectKeyId = keyIdentifier(template.subjectPublicKey);
  const authorityKeyId = selfSigned ? subjectKeyId : keyIdentifier(signer.certificate.publicKey);
  const extensions: object[] = [
    {
      name: 'basicConstraints',
      critical: true,
      cA: template.isCa,
      ...(template.isCa && template.pathLength !== undefined
        ? { pathLenConstraint: template.pathLength }
        : {}),
    },
    template.isCa
      ? { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true, digitalSignature: true }
      : { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    ...(template.isCa ? [] : [{ name: 'extKeyUsage', serverAuth: true, clientAuth: true }]),
    {
      name: 'subjectKeyIdentifier',
      value: forge.asn1.create(
        forge.asn1.Class.UNIVERSAL,
        forge.asn1.Type.OCTETSTRING,
        false,
        toBinary(subjectKeyId),
      ),
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: toBinary(authorityKeyId) },
  ];
  if (template.uris.length > 0) {
    extensions.push({
      name: 'subjectAltName',
      altNames: template.uris.map((uri) => ({ type: 6, value: uri })),
    });
  }
  cert.setExtensions(extensions);
  const tbs = forgeLayout.getTBSCertificate(cert);
  const fields = tbs.value as forge.asn1.Asn1[];
  fields[TBS_SIGNATURE_INDEX] = algorithm;
  if (!selfSigned) fields[TBS_ISSUER_INDEX] = subjectNameOf(signer.certificate);
  fields[TBS_SPKI_INDEX] = spkiNode(template.subjectPublicKey);
  const signature = sign('sha256', derOf(tbs), signingKey);
  return pemOf('CERTIFICATE', derOf(signedStructure(tbs, algorithm, signature)));
}

/**
 * The issuer's subject Name exactly as encoded in its certificate, so that chain building
 * matches byte for byte. Only the Name is read; nothing is verified here.
 */
function subjectNameOf(issuer: X509Certificate): forge.asn1.Asn1 {
  const certificate = forge.asn1.fromDer(toBinary(issuer.raw));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0]!;
  return (tbs.value as forge.asn1.Asn1[])[TBS_SUBJECT_INDEX]!;
}
