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
  options: { roots: readonly X509Certificate[]; trustDomain: string; intermediates?: IntermediateCache },
): VerifiedIdentity {
  const cache = options.intermediates ?? sharedIntermediates;
  // Only getPeerCertificate(true): on a server socket, calling getPeerX509Certificate()
  // first leaves the detailed form without its issuer chain (seen on Node 20).
  const detailed = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!detailed?.raw) throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', 'the peer presented no certificate');
  const chain: X509Certificate[] = [new X509Certificate(detailed.raw)];
  const issuer = detailed.issuerCertificate;
  // Node links a self-signed certificate to itself; stop at the first certificate that is
  // its own issuer (the root, which comes from our bundle, not from the peer).
  if (issuer?.raw && !issuer.raw.equals(detailed.raw)) {
    chain.push(new X509Certificate(issuer.raw));
  } else {
    // A resumed TLS session carries only the peer's leaf. Its intermediate was verified at
    // the full handshake that made the session, and remembered then.
    const remembered = cache.issuerOf(chain[0]!);
    if (remembered) chain.push(remembered);
  }
  const identity = verifySvid({ chain, roots: options.roots, trustDomain: options.trustDomain });
  cache.remember(chain[1]!);
  return identity;
}

/** Intermediates seen in verified chains, to complete the chain of a resumed session. */
export class IntermediateCache {
  private readonly byFingerprint = new Map<string, X509Certificate>();
  constructor(private readonly limit = 256) {}

  remember(intermediate: X509Certificate): void {
    if (this.byFingerprint.has(intermediate.fingerprint256)) return;
    if (this.byFingerprint.size >= this.limit) {
      const oldest = this.byFingerprint.keys().next().value as string;
      this.byFingerprint.delete(oldest);
    }
    this.byFingerprint.set(intermediate.fingerprint256, intermediate);
  }

  issuerOf(leaf: X509Certificate): X509Certificate | undefined {
    for (const candidate of this.byFingerprint.values()) {
      if (leaf.checkIssued(candidate) && leaf.verify(candidate.publicKey)) return candidate;
    }
    return undefined;
  }
}

const sharedIntermediates = new IntermediateCache();
