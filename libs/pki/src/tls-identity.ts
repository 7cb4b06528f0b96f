import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { PkiError } from './errors.ts';
import { verifySvid, type VerifiedIdentity } from './verify.ts';

/**
 * The verified SPIFFE identity of the peer of an mTLS connection. OpenSSL has already
 * verified the chain during the handshake (`rejectUnauthorized`); this adds the SPIFFE
 * checks Node's TLS does not do (URI SANs, trust domain, cluster scoping).
 */
export function peerIdentity(
  socket: TLSSocket,
  options: { roots: readonly X509Certificate[]; trustDomain: string },
): VerifiedIdentity {
  // Only getPeerCertificate(true): on a server socket, calling getPeerX509Certificate()
  // first leaves the detailed form without its issuer chain (seen on Node 20).
  const detailed = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!detailed?.raw) throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', 'the peer presented no certificate');
  const chain: X509Certificate[] = [new X509Certificate(detailed.raw)];
  const issuer = detailed.issuerCertificate;
  // Node links a self-signed certificate to itself; stop at the first certificate that is
  // its own issuer (the root, which comes from our bundle, not from the peer).
  if (issuer?.raw && !issuer.raw.equals(detailed.raw)) chain.push(new X509Certificate(issuer.raw));
  return verifySvid({ chain, roots: options.roots, trustDomain: options.trustDomain });
}
