import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { IdentityError } from './errors.ts';
import { callerFromUsername, type ProofVerifier, type ProvenCaller } from './proof.ts';

/** The audience Causeway asks projected service-account tokens to carry. */
export const TOKEN_AUDIENCE = 'causeway';

/** Kubernetes mode: the API server says whose token it is (TokenReview). */
export class TokenReviewVerifier implements ProofVerifier {
  private readonly api: AuthenticationV1Api;
  constructor(
    kubeConfig: KubeConfig,
    private readonly audience = TOKEN_AUDIENCE,
  ) {
    this.api = kubeConfig.makeApiClient(AuthenticationV1Api);
  }

  async verify(token: string): Promise<ProvenCaller> {
    let review;
    try {
      review = await this.api.createTokenReview({ body: { spec: { token, audiences: [this.audience] } } });
    } catch (error) {
      throw new IdentityError(
        'CAUSEWAY_IDENTITY_UNAVAILABLE',
        503,
        'the Kubernetes API did not answer the TokenReview',
        {
          cause: error,
        },
      );
    }
    if (!review.status?.authenticated) {
      throw new IdentityError(
        'CAUSEWAY_IDENTITY_PROOF_REFUSED',
        403,
        `the service-account token was refused by the API server${review.status?.error ? `: ${review.status.error}` : ''}`,
      );
    }
    // An authenticator that ignores audiences may still say "authenticated": the token is
    // for us only if the API server confirms our audience.
    if (!review.status.audiences?.includes(this.audience)) {
      throw new IdentityError(
        'CAUSEWAY_IDENTITY_PROOF_REFUSED',
        403,
        `the token is not for audience '${this.audience}' (audiences: ${(review.status.audiences ?? []).join(', ') || 'none'})`,
      );
    }
    const caller = callerFromUsername(review.status.user?.username);
    if (!caller) {
      throw new IdentityError(
        'CAUSEWAY_IDENTITY_PROOF_REFUSED',
        403,
        `'${review.status.user?.username}' is not a service account`,
      );
    }
    return { ...caller, via: 'token-review' };
  }
}
