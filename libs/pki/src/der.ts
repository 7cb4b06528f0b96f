import { PkiError } from './errors.ts';

/** One DER TLV: where its value starts and where it ends in the buffer. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly valueStart: number;
  readonly end: number;
}

/** Reads the TLV at `offset`, strictly: definite lengths only, never past the buffer. */
export function readTlv(buffer: Buffer, offset: number): Tlv {
  const fail = (why: string): PkiError =>
    new PkiError('CAUSEWAY_PKI_BAD_INPUT', `malformed DER at byte ${offset}: ${why}`);
  if (offset + 2 > buffer.length) throw fail('truncated header');
  const tag = buffer[offset]!;
  let length = buffer[offset + 1]!;
  let valueStart = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4) throw fail('indefinite or oversized length');
    if (valueStart + octets > buffer.length) throw fail('truncated length');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + buffer[valueStart + i]!;
    valueStart += octets;
  }
  const end = valueStart + length;
  if (end > buffer.length) throw fail('value runs past the end');
  return { tag, start: offset, valueStart, end };
}

/** The children of a constructed TLV. */
export function children(buffer: Buffer, parent: Tlv): Tlv[] {
  const result: Tlv[] = [];
  for (let offset = parent.valueStart; offset < parent.end;) {
    const child = readTlv(buffer, offset);
    result.push(child);
    offset = child.end;
  }
  return result;
}
