import type { X509Certificate } from 'node:crypto';

/**
 * The subject alternative names of a certificate, from Node's `subjectAltName` text.
 * Node quotes (JSON) an entry whose value contains a comma or quote, so that a crafted
 * SAN cannot smuggle a second entry into the list; quoted entries are decoded here.
 */
export function subjectAltNames(certificate: X509Certificate): Array<{ type: string; value: string }> {
  const text = certificate.subjectAltName;
  if (!text) return [];
  const entries: Array<{ type: string; value: string }> = [];
  let rest = text;
  while (rest.length > 0) {
    const colon = rest.indexOf(':');
    if (colon === -1) break;
    const type = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      let end = 1;
      while (end < rest.length && !(rest[end] === '"' && rest[end - 1] !== '\\')) end++;
      value = JSON.parse(rest.slice(0, end + 1)) as string;
      rest = rest.slice(end + 1);
    } else {
      const comma = rest.indexOf(', ');
      value = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? '' : rest.slice(comma);
    }
    entries.push({ type, value });
    if (rest.startsWith(', ')) rest = rest.slice(2);
  }
  return entries;
}

/** The URI SANs of a certificate. */
export function uriSans(certificate: X509Certificate): string[] {
  return subjectAltNames(certificate)
    .filter((entry) => entry.type === 'URI')
    .map((entry) => entry.value);
}
