/** Stable codes of the signing service's refusals. */
export type IdentityErrorCode =
  | 'CAUSEWAY_IDENTITY_NO_PROOF'
  | 'CAUSEWAY_IDENTITY_PROOF_REFUSED'
  | 'CAUSEWAY_IDENTITY_MISMATCH'
  | 'CAUSEWAY_IDENTITY_BAD_REQUEST'
  | 'CAUSEWAY_IDENTITY_UNAVAILABLE';

/** A signing request was refused; `status` is the HTTP status the service answers with. */
export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  readonly status: number;
  constructor(code: IdentityErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdentityError';
    this.code = code;
    this.status = status;
  }
}
