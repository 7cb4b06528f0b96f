// A cluster's intermediate CA and its federation controller's identity, made from a root:
// what a controller signs catalog records with.
import { X509Certificate, type KeyObject } from 'node:crypto';
import {
  generateKeyPair,
  issueComponentCertificate,
  issueIntermediateCa,
  loadCertificateAuthority,
  type CertificateAuthority,
} from '@causeway/pki';

export interface ControllerIdentityFixture {
  readonly intermediate: CertificateAuthority;
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
  /** PEM: controller certificate, then the intermediate. */
  readonly chainPem: string;
}

export async function controllerIdentity(
  root: CertificateAuthority,
  trustDomain: string,
  cluster: string,
): Promise<ControllerIdentityFixture> {
  const keys = await generateKeyPair();
  const intermediate = loadCertificateAuthority(
    issueIntermediateCa(root, { trustDomain, cluster, publicKey: keys.publicKey }),
    keys.privateKey,
  );
  const controllerKeys = await generateKeyPair();
  const pem = issueComponentCertificate(intermediate, {
    trustDomain,
    cluster,
    component: 'federation-controller',
    publicKey: controllerKeys.publicKey,
  });
  return {
    intermediate,
    certificate: new X509Certificate(pem),
    privateKey: controllerKeys.privateKey,
    chainPem: pem + intermediate.certificatePem,
  };
}
