/** Stable codes of the PKI's errors. */
export type PkiErrorCode =
  | 'CAUSEWAY_PKI_BAD_SPIFFE_ID'
  | 'CAUSEWAY_PKI_BAD_INPUT'
  | 'CAUSEWAY_PKI_NOT_SPIFFE'
  | 'CAUSEWAY_PKI_MULTIPLE_URI_SANS'
  | 'CAUSEWAY_PKI_FOREIGN_TRUST_DOMAIN'
  | 'CAUSEWAY_PKI_LEAF_IS_CA'
  | 'CAUSEWAY_PKI_ISSUER_NOT_CA'
  | 'CAUSEWAY_PKI_EXPIRED'
  | 'CAUSEWAY_PKI_NOT_YET_VALID'
  | 'CAUSEWAY_PKI_BAD_SIGNATURE'
  | 'CAUSEWAY_PKI_UNTRUSTED_ROOT'
  | 'CAUSEWAY_PKI_CLUSTER_MISMATCH'
  | 'CAUSEWAY_PKI_BAD_CSR'
  | 'CAUSEWAY_PKI_BAD_BUNDLE';

/** A certificate, CSR, identity or bundle was refused; `code` says why. */
export class PkiError extends Error {
  readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PkiError';
    this.code = code;
  }
}
