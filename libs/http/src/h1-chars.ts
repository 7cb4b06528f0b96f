/**
 * Byte classes of the HTTP/1.1 grammar (RFC 9110 §5.6, RFC 9112), one table lookup per byte.
 */

/** tchar: a byte of a token (method, field name, transfer coding, chunk extension name). */
export const TCHAR = 1;
/** A byte allowed in a request-target: VCHAR except `#` (a fragment is never sent). */
export const TARGET = 2;
/** field-vchar, SP or HTAB: a byte allowed inside a field value or a reason phrase. */
export const FIELD = 4;
/** An upper-case ASCII letter (a field name that holds none is already lower-case). */
export const UPPER = 8;
export const HEXDIG = 16;
export const DIGIT = 32;
/** qdtext: a byte allowed unescaped inside a quoted-string. */
export const QDTEXT = 64;
/** A byte of a reg-name or of an IPv4 address in a Host (unreserved, sub-delims, `%`). */
export const REG_NAME = 128;

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;
export const SEMICOLON = 0x3b;
export const COMMA = 0x2c;

function classes(): Uint8Array {
  const table = new Uint8Array(256);
  const mark = (chars: string, flag: number): void => {
    for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)]! |= flag;
  };
  const range = (from: number, to: number, flag: number): void => {
    for (let c = from; c <= to; c++) table[c]! |= flag;
  };
  const digits = '0123456789';
  const lower = 'abcdefghijklmnopqrstuvwxyz';
  const upper = lower.toUpperCase();
  mark(digits + lower + upper + "!#$%&'*+-.^_`|~", TCHAR);
  range(0x21, 0x7e, TARGET);
  table[0x23]! &= ~TARGET;
  range(0x21, 0x7e, FIELD);
  range(0x80, 0xff, FIELD);
  mark(' \t', FIELD);
  mark(upper, UPPER);
  mark(digits + 'abcdefABCDEF', HEXDIG);
  mark(digits, DIGIT);
  mark(' \t!', QDTEXT);
  range(0x23, 0x5b, QDTEXT);
  range(0x5d, 0x7e, QDTEXT);
  range(0x80, 0xff, QDTEXT);
  mark(digits + lower + upper + "-._~!$&'()*+,;=%", REG_NAME);
  return table;
}

export const CHAR: Uint8Array = classes();

/** Each byte with ASCII upper-case letters mapped to lower-case. */
export const LOWER: Uint8Array = Uint8Array.from({ length: 256 }, (_, c) =>
  c >= 0x41 && c <= 0x5a ? c | 0x20 : c,
);

/** Whether bytes `from..to` of `buf` spell `word` (lower-case ASCII) in any letter case. */
export function bytesEqualIgnoreCase(buf: Uint8Array, from: number, to: number, word: string): boolean {
  if (to - from !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (LOWER[buf[from + k]!] !== word.charCodeAt(k)) return false;
  return true;
}

/** Whether `text` spells `word` (lower-case ASCII) in any letter case. */
export function equalsIgnoreCase(text: string, word: string): boolean {
  if (text.length !== word.length) return false;
  for (let k = 0; k < word.length; k++) {
    const c = text.charCodeAt(k);
    if ((c < 0x100 ? LOWER[c] : c) !== word.charCodeAt(k)) return false;
  }
  return true;
}
