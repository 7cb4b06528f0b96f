import { PkiError } from './errors.ts';

/** A parsed SPIFFE ID with Causeway's meaning of its path. */
export type SpiffeId =
  | {
      readonly uri: string;
      readonly trustDomain: string;
      readonly kind: 'workload';
      readonly namespace: string;
      readonly serviceAccount: string;
    }
  | { readonly uri: string; readonly trustDomain: string; readonly kind: 'cluster'; readonly cluster: string }
  | {
      readonly uri: string;
      readonly trustDomain: string;
      readonly kind: 'component';
      readonly cluster: string;
      readonly component: string;
    }
  | { readonly uri: string; readonly trustDomain: string; readonly kind: 'other'; readonly path: string };

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Checks a trust domain name (SPIFFE: lower-case letters, digits, `.`, `-`, `_`). */
export function checkTrustDomain(trustDomain: string): string {
  if (!TRUST_DOMAIN.test(trustDomain)) {
    throw new PkiError(
      'CAUSEWAY_PKI_BAD_SPIFFE_ID',
      `trust domain '${trustDomain}' may contain only lower-case letters, digits, '.', '-' and '_'`,
    );
  }
  return trustDomain;
}

function checkLabel(what: string, value: string): string {
  if (!DNS_LABEL.test(value)) {
    throw new PkiError(
      'CAUSEWAY_PKI_BAD_SPIFFE_ID',
      `${what} '${value}' is not a DNS label (a-z, 0-9, '-', at most 63)`,
    );
  }
  return value;
}

function checkSegment(what: string, value: string): string {
  if (!SEGMENT.test(value) || value === '.' || value === '..') {
    throw new PkiError(
      'CAUSEWAY_PKI_BAD_SPIFFE_ID',
      `${what} '${value}' may contain only letters, digits, '.', '-' and '_'`,
    );
  }
  return value;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`: the same service account is one identity in every cluster. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${checkTrustDomain(trustDomain)}/ns/${checkLabel('namespace', namespace)}/sa/${checkSegment('service account', serviceAccount)}`;
}

/** `spiffe://<td>/cluster/<name>`: names a cluster's intermediate CA. */
export function clusterSpiffeId(trustDomain: string, cluster: string): string {
  return `spiffe://${checkTrustDomain(trustDomain)}/cluster/${checkLabel('cluster', cluster)}`;
}

/** `spiffe://<td>/cluster/<name>/<component>`: a controller's or gateway's own identity. */
export function componentSpiffeId(trustDomain: string, cluster: string, component: string): string {
  return `${clusterSpiffeId(trustDomain, cluster)}/${checkLabel('component', component)}`;
}

/**
 * Parses a SPIFFE ID strictly (SPIFFE-ID spec §2): scheme `spiffe`, a trust domain, a path
 * of non-empty segments without `.`/`..`, no port, user info, query, fragment or
 * percent-encoding.
 */
export function parseSpiffeId(uri: string): SpiffeId {
  const bad = (why: string): PkiError =>
    new PkiError('CAUSEWAY_PKI_BAD_SPIFFE_ID', `'${uri}' is not a SPIFFE ID: ${why}`);
  if (uri.length > 2048) throw bad('longer than 2048 bytes');
  if (!uri.startsWith('spiffe://')) throw bad("the scheme is not 'spiffe'");
  const rest = uri.slice('spiffe://'.length);
  if (/[?#%]/.test(rest)) throw bad('it has a query, fragment or percent-encoding');
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain))
    throw bad(`trust domain '${trustDomain}' has characters outside [a-z0-9._-]`);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (path === '' || path === '/') throw bad('it names no workload (empty path)');
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..' || !SEGMENT.test(segment)) {
      throw bad(`path segment '${segment}' is empty, '.', '..' or has characters outside [A-Za-z0-9._-]`);
    }
  }
  if (segments.length === 4 && segments[0] === 'ns' && segments[2] === 'sa') {
    return { uri, trustDomain, kind: 'workload', namespace: segments[1]!, serviceAccount: segments[3]! };
  }
  if (segments[0] === 'cluster' && segments.length === 2)
    return { uri, trustDomain, kind: 'cluster', cluster: segments[1]! };
  if (segments[0] === 'cluster' && segments.length === 3) {
    return { uri, trustDomain, kind: 'component', cluster: segments[1]!, component: segments[2]! };
  }
  return { uri, trustDomain, kind: 'other', path };
}
