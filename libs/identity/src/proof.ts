import { createHash, timingSafeEqual } from 'node:crypto';
import { IdentityError } from './errors.ts';

/** Who the caller proved to be: a Kubernetes service account. */
export interface ProvenCaller {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** How it was proven, for logs and metrics. */
  readonly via: 'token-review' | 'join-token';
}

/** Checks a bearer token and says which service account it belongs to, or refuses. */
export interface ProofVerifier {
  verify(token: string): Promise<ProvenCaller>;
}

/** The username a service-account token authenticates as in Kubernetes. */
export function callerFromUsername(
  username: string | undefined,
): { namespace: string; serviceAccount: string } | undefined {
  const match = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username ?? '');
  return match ? { namespace: match[1]!, serviceAccount: match[2]! } : undefined;
}

/**
 * A join token from the controller's config (file mode): it proves the caller may obtain
 * the identity it asks for within these namespaces and service accounts (`*` for any).
 */
export interface JoinToken {
  readonly token: string;
  readonly namespaces: readonly string[];
  readonly serviceAccounts: readonly string[];
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * File mode: a join token names what it may ask for; the identity itself comes from the
 * CSR, so the verifier returns a caller the request must be checked against with
 * `allows`.
 */
export class JoinTokenVerifier {
  private readonly tokens: ReadonlyArray<JoinToken & { hash: Buffer }>;
  constructor(tokens: readonly JoinToken[]) {
    this.tokens = tokens.map((token) => ({ ...token, hash: digest(token.token) }));
  }

  /** The join token entry matching `token` (compared in constant time), or a refusal. */
  find(token: string): JoinToken {
    const hash = digest(token);
    const match = this.tokens.find((entry) => timingSafeEqual(entry.hash, hash));
    if (!match)
      throw new IdentityError(
        'CAUSEWAY_IDENTITY_PROOF_REFUSED',
        403,
        'the join token is not known to this controller',
      );
    return match;
  }

  static allows(entry: JoinToken, namespace: string, serviceAccount: string): boolean {
    const matches = (patterns: readonly string[], value: string): boolean =>
      patterns.some((p) => p === '*' || p === value);
    return matches(entry.namespaces, namespace) && matches(entry.serviceAccounts, serviceAccount);
  }
}
