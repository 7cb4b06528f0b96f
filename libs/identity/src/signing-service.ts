import { X509Certificate } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import {
  bundleHash,
  issueWorkloadCertificate,
  parseCsr,
  PkiError,
  type CertificateAuthority,
  type TrustBundle,
} from '@causeway/pki';
import { authorizeCsr } from './authorize.ts';
import { IdentityError } from './errors.ts';
import { IssuedCertificates } from './issued-registry.ts';
import { JoinTokenVerifier, type JoinToken, type ProofVerifier } from './proof.ts';

/** How callers prove who they are. */
export type ProofMode =
  { kind: 'token-review'; verifier: ProofVerifier } | { kind: 'join-tokens'; tokens: readonly JoinToken[] };

export interface SigningServiceOptions {
  readonly trustDomain: string;
  readonly cluster: string;
  /** The intermediate that signs now (it changes during a root rotation). */
  readonly intermediate: () => CertificateAuthority;
  /** The trust bundle handed out with every certificate. */
  readonly trustBundle: () => TrustBundle;
  readonly proof: ProofMode;
  readonly workloadTtlMs: number;
  readonly registry?: Registry;
  /** TLS for the service itself: the controller's own certificate chain and key (PEM). */
  readonly tls: { key: string; cert: string };
  /**
   * Ask clients for a certificate (mTLS) without requiring one: routes added beside the
   * signing API (the discovery API) verify the peer's SPIFFE identity per request.
   */
  readonly requestClientCertificates?: boolean;
  /** Where issued certificates are recorded (shared with the trust status reporter). */
  readonly issued?: IssuedCertificates;
}

/** What POST /v1/certificates answers. */
export interface SignedCertificateResponse {
  readonly spiffeId: string;
  /** PEM: leaf, then the cluster intermediate. */
  readonly certificateChain: string;
  readonly trustBundle: readonly string[];
  readonly bundleHash: string;
  readonly notAfter: string;
}

/** What GET /v1/trust answers: enough for a proxy to notice a rotation. */
export interface TrustStatusResponse {
  readonly trustDomain: string;
  readonly bundleVersion: number;
  readonly bundleHash: string;
  readonly roots: readonly string[];
  /** SHA-256 fingerprint of the intermediate that signs now. */
  readonly intermediate: string;
}

const MAX_CSR_BYTES = 16 * 1024;

/**
 * The controller's signing service for its cluster's proxies (HTTPS, fastify):
 * `POST /v1/certificates` with `{ csr, instance? }` and `authorization: Bearer <token>`
 * (a service-account token checked by TokenReview, or a join token in file mode).
 */
export function buildSigningService(options: SigningServiceOptions): {
  app: FastifyInstance;
  issued: IssuedCertificates;
} {
  const app = Fastify({
    https: options.requestClientCertificates
      ? { ...options.tls, requestCert: true, rejectUnauthorized: false }
      : options.tls,
    bodyLimit: MAX_CSR_BYTES * 2,
    logger: false,
    // Refuse unknown fields instead of silently dropping them.
    ajv: { customOptions: { removeAdditional: false } },
  });
  const issued = options.issued ?? new IssuedCertificates();
  const registers = options.registry ? [options.registry] : [];
  const issuedTotal = new Counter({
    name: 'causeway_certificates_issued_total',
    help: 'Workload certificates signed by this controller.',
    registers,
  });
  const refusedTotal = new Counter({
    name: 'causeway_certificate_requests_refused_total',
    help: 'Certificate requests refused, by reason code.',
    labelNames: ['reason'],
    registers,
  });
  const joinTokens =
    options.proof.kind === 'join-tokens' ? new JoinTokenVerifier(options.proof.tokens) : undefined;

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof IdentityError) {
      refusedTotal.inc({ reason: error.code });
      return reply.code(error.status).send({ code: error.code, message: error.message });
    }
    if (error instanceof PkiError) {
      refusedTotal.inc({ reason: error.code });
      return reply.code(400).send({ code: error.code, message: error.message });
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    const code = (error as { code?: unknown }).code;
    // Routes added beside the signing API throw errors with their own CAUSEWAY_ code.
    if (status < 500 && typeof code === 'string' && code.startsWith('CAUSEWAY_')) {
      return reply.code(status).send({ code, message: (error as Error).message });
    }
    if (status < 500) {
      if (request.url.startsWith('/v1/certificates'))
        refusedTotal.inc({ reason: 'CAUSEWAY_IDENTITY_BAD_REQUEST' });
      return reply
        .code(status)
        .send({ code: 'CAUSEWAY_IDENTITY_BAD_REQUEST', message: (error as Error).message });
    }
    return reply.code(500).send({ code: 'CAUSEWAY_IDENTITY_INTERNAL', message: 'internal error' });
  });

  app.post<{ Body: { csr: string; instance?: string } }>(
    '/v1/certificates',
    {
      schema: {
        body: {
          type: 'object',
          required: ['csr'],
          additionalProperties: false,
          properties: {
            csr: { type: 'string', minLength: 1, maxLength: MAX_CSR_BYTES },
            instance: { type: 'string', minLength: 1, maxLength: 253 },
          },
        },
      },
    },
    async (request): Promise<SignedCertificateResponse> => {
      const header = request.headers.authorization ?? '';
      const token = /^Bearer (\S+)$/.exec(header)?.[1];
      if (!token)
        throw new IdentityError(
          'CAUSEWAY_IDENTITY_NO_PROOF',
          401,
          'no bearer token: send a service-account or join token',
        );
      const csr = parseCsr(request.body.csr);
      let allowed: (namespace: string, serviceAccount: string) => boolean;
      if (joinTokens) {
        const entry = joinTokens.find(token);
        allowed = (ns, sa) => JoinTokenVerifier.allows(entry, ns, sa);
      } else {
        const caller = await (options.proof as { verifier: ProofVerifier }).verifier.verify(token);
        allowed = (ns, sa) => ns === caller.namespace && sa === caller.serviceAccount;
      }
      const workload = authorizeCsr(csr, options.trustDomain, allowed);
      const intermediate = options.intermediate();
      const leafPem = issueWorkloadCertificate(intermediate, {
        trustDomain: options.trustDomain,
        namespace: workload.namespace,
        serviceAccount: workload.serviceAccount,
        publicKey: csr.publicKey,
        ttlMs: options.workloadTtlMs,
      });
      const leaf = new X509Certificate(leafPem);
      const bundle = options.trustBundle();
      const root = bundle.roots
        .map((pem) => new X509Certificate(pem))
        .find((r) => intermediate.certificate.checkIssued(r) && intermediate.certificate.verify(r.publicKey));
      const hash = bundleHash(bundle);
      issued.record(request.body.instance ?? workload.uri, {
        spiffeId: workload.uri,
        rootFingerprint: root?.fingerprint256 ?? 'unknown',
        bundleHash: hash,
        notAfter: new Date(leaf.validTo),
      });
      issuedTotal.inc();
      return {
        spiffeId: workload.uri,
        certificateChain: leafPem + intermediate.certificatePem,
        trustBundle: bundle.roots,
        bundleHash: hash,
        notAfter: new Date(leaf.validTo).toISOString(),
      };
    },
  );

  app.get('/v1/trust', async (): Promise<TrustStatusResponse> => {
    const bundle = options.trustBundle();
    return {
      trustDomain: options.trustDomain,
      bundleVersion: bundle.version,
      bundleHash: bundleHash(bundle),
      roots: bundle.roots,
      intermediate: options.intermediate().certificate.fingerprint256,
    };
  });

  return { app, issued };
}
