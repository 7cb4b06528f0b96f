import { X509Certificate } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
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

const MAX_CSR_BYTES = 16 * 1024;

/** How callers prove who they are. */
export type ProofMode =
  { kind: 'token-review'; verifier: ProofVerifier } | { kind: 'join-tokens'; tokens: readonly JoinToken[] };

/** What the signing routes need: who signs, what is handed out, and how callers prove themselves. */
export interface SigningRoutesOptions {
  readonly trustDomain: string;
  readonly cluster: string;
  /** The intermediate that signs now (it changes during a root rotation). */
  readonly intermediate: () => CertificateAuthority;
  /** The trust bundle handed out with every certificate. */
  readonly trustBundle: () => TrustBundle;
  readonly proof: ProofMode;
  readonly workloadTtlMs: number;
  readonly registry?: Registry;
  /** Where issued certificates are recorded (shared with the trust status reporter). */
  readonly issued?: IssuedCertificates;
}

export interface SigningServiceOptions extends SigningRoutesOptions {
  /** TLS for the service itself: the controller's own certificate chain and key (PEM). */
  readonly tls: { key: string; cert: string };
}

/**
 * How a controller's HTTPS server is made for these routes: a body no larger than a CSR
 * needs, and unknown fields refused instead of silently dropped.
 */
export const SIGNING_SERVER_OPTIONS = {
  bodyLimit: MAX_CSR_BYTES * 2,
  logger: false,
  ajv: { customOptions: { removeAdditional: false } },
} as const;

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

/**
 * The signing service for a cluster's proxies on an HTTPS server of its own:
 * `POST /v1/certificates` with `{ csr, instance? }` and `authorization: Bearer <token>`
 * (a service-account token checked by TokenReview, or a join token in file mode). The
 * federation controller registers {@link signingRoutes} on the server it owns instead.
 */
export function buildSigningService(options: SigningServiceOptions): {
  app: FastifyInstance;
  issued: IssuedCertificates;
} {
  const app = Fastify({ https: options.tls, ...SIGNING_SERVER_OPTIONS });
  const issued = options.issued ?? new IssuedCertificates();
  void app.register(signingRoutes, { ...options, issued });
  return { app, issued };
}

/**
 * The signing API as a fastify plugin, for a controller's HTTPS server (made with
 * {@link SIGNING_SERVER_OPTIONS}): `POST /v1/certificates`, `GET /v1/trust`, and the error
 * answers `{ code, message }` for them (its own error handler: the plugin is encapsulated).
 * Issued certificates are recorded in `options.issued`.
 */
export const signingRoutes: FastifyPluginAsync<SigningRoutesOptions> = async (app, options) => {
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
};
