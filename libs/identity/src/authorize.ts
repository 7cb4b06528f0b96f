import { parseSpiffeId, type ParsedCsr } from '@causeway/pki';
import { IdentityError } from './errors.ts';

/** The workload identity a CSR asks for, once it is allowed. */
export interface AuthorizedWorkload {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly uri: string;
}

/**
 * A CSR must ask for exactly one workload SPIFFE ID in our trust domain, and `allowed`
 * (the caller's proof) must cover its namespace and service account.
 */
export function authorizeCsr(
  csr: ParsedCsr,
  trustDomain: string,
  allowed: (namespace: string, serviceAccount: string) => boolean,
): AuthorizedWorkload {
  if (csr.uris.length !== 1) {
    throw new IdentityError(
      'CAUSEWAY_IDENTITY_BAD_REQUEST',
      400,
      `the CSR must name exactly one URI SAN, it names ${csr.uris.length}`,
    );
  }
  let id;
  try {
    id = parseSpiffeId(csr.uris[0]!);
  } catch (error) {
    throw new IdentityError('CAUSEWAY_IDENTITY_BAD_REQUEST', 400, (error as Error).message, { cause: error });
  }
  if (id.trustDomain !== trustDomain) {
    throw new IdentityError(
      'CAUSEWAY_IDENTITY_MISMATCH',
      403,
      `'${id.uri}' is not in trust domain '${trustDomain}'`,
    );
  }
  if (id.kind !== 'workload') {
    throw new IdentityError(
      'CAUSEWAY_IDENTITY_MISMATCH',
      403,
      `'${id.uri}' is not a workload identity (spiffe://<td>/ns/<ns>/sa/<sa>)`,
    );
  }
  if (!allowed(id.namespace, id.serviceAccount)) {
    throw new IdentityError(
      'CAUSEWAY_IDENTITY_MISMATCH',
      403,
      `the caller's proof does not cover ${id.namespace}/${id.serviceAccount} (asked for ${id.uri})`,
    );
  }
  return { namespace: id.namespace, serviceAccount: id.serviceAccount, uri: id.uri };
}
