/**
 * Request and response heads for the forwarding side, always HTTP/1.1. Every part is checked
 * against the grammar the parser enforces, so a rewritten head can never carry a CR, LF or
 * other control byte into the next hop (header injection, request splitting).
 */

/** A head part that would not survive the grammar (a caller bug: parsed heads always pass). */
export class H1WriteError extends TypeError {
  readonly code = 'CAUSEWAY_H1_WRITE_INVALID';
  constructor(what: string, value: unknown) {
    super(`cannot write ${what} ${JSON.stringify(value)} into an HTTP/1.1 head`);
    this.name = 'H1WriteError';
  }
}

// Whole-string checks: one native regular-expression run per part is faster than a loop over
// its chars. A char above 0xFF never matches (a latin1 encoder would keep its low byte only).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_CONTENT = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_TARGET = /^[\x21\x22\x24-\x7e]+$/;

function fieldLines(head: string, headers: readonly string[]): string {
  if (headers.length % 2 !== 0) throw new H1WriteError('a field list of odd length', headers.length);
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (!TOKEN.test(name)) throw new H1WriteError('field name', name);
    if (!FIELD_CONTENT.test(value)) throw new H1WriteError('field value', value);
    head += name + ': ' + value + '\r\n';
  }
  return head + '\r\n';
}

/**
 * `method SP target SP HTTP/1.x CRLF` (`version` 1 unless the request was HTTP/1.0), then
 * `name: value CRLF` per pair of flat `headers`, then CRLF.
 */
export function writeRequestHead(
  method: string,
  target: string,
  headers: readonly string[],
  version: 0 | 1 = 1,
): Buffer {
  if (!TOKEN.test(method)) throw new H1WriteError('method', method);
  if (!REQUEST_TARGET.test(target)) throw new H1WriteError('request-target', target);
  return Buffer.from(
    fieldLines(method + ' ' + target + (version === 0 ? ' HTTP/1.0\r\n' : ' HTTP/1.1\r\n'), headers),
    'latin1',
  );
}

/** `HTTP/1.1 SP status SP reason CRLF`, then `name: value CRLF` per pair of flat `headers`, then CRLF. */
export function writeResponseHead(status: number, reason: string, headers: readonly string[]): Buffer {
  if (!Number.isInteger(status) || status < 100 || status > 599) throw new H1WriteError('status', status);
  if (!FIELD_CONTENT.test(reason)) throw new H1WriteError('reason phrase', reason);
  return Buffer.from(fieldLines('HTTP/1.1 ' + status + ' ' + reason + '\r\n', headers), 'latin1');
}
