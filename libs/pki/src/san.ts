import type { X509Certificate } from 'node:crypto';
import { PkiError } from './errors.ts';

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
    if (colon === -1) throw malformed(text);
    const type = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      // A JSON string: find its closing quote, skipping escaped characters (`\\`, `\"`).
      let end = 1;
      while (end < rest.length && rest[end] !== '"') end += rest[end] === '\\' ? 2 : 1;
      if (end >= rest.length) throw malformed(text);
      try {
        value = JSON.parse(rest.slice(0, end + 1)) as string;
      } catch (error) {
        throw malformed(text, error);
      }
      rest = rest.slice(end + 1);
    } else {
      const comma = rest.indexOf(', ');
      value = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? '' : rest.slice(comma);
    }
    entries.push({ type, value });
    if (rest.startsWith(', ')) rest = rest.slice(2);
    else if (rest.length > 0) throw malformed(text);
  }
  return entries;
}

function malformed(text: string, cause?: unknown): PkiError {
  return new PkiError(
    'CAUSEWAY_PKI_NOT_SPIFFE',
    `cannot read the subject alternative names ${JSON.stringify(text.slice(0, 200))}`,
    {
      cause,
    },
  );
}

/** The URI SANs of a certificate. */
export function uriSans(certificate: X509Certificate): string[] {
  return subjectAltNames(certificate)
    .filter((entry) => entry.type === 'URI')
    .map((entry) => entry.value);
}
