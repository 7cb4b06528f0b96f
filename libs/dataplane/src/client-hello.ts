/**
 * Reads the server name (SNI) from the first bytes of a TLS connection without
 * terminating TLS: the east-west gateway routes on it and then passes the bytes through.
 */

const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME = 0x0000;
/** A TLS record carries at most 2^14 bytes of plaintext. */
const MAX_RECORD = 16_384;
/** The largest ClientHello accepted (post-quantum key shares make them ~1.8 KiB today). */
export const MAX_CLIENT_HELLO = 16_384;

export type ClientHelloResult =
  /** More bytes are needed. */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'hello'; readonly serverName: string | undefined }
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'oversized' };

class Malformed extends Error {}

/** A bounds-checked reader over one handshake message. */
class Reader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}
  get remaining(): number {
    return this.bytes.length - this.offset;
  }
  u8(): number {
    if (this.remaining < 1) throw new Malformed('truncated');
    return this.bytes[this.offset++]!;
  }
  u16(): number {
    if (this.remaining < 2) throw new Malformed('truncated');
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  take(length: number): Buffer {
    if (this.remaining < length) throw new Malformed('a length runs past its field');
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
}

/**
 * Parses the ClientHello at the start of `data` (which may span several handshake
 * records). Never throws: bad input is `malformed`, too much is `oversized`.
 */
export function parseClientHello(data: Buffer): ClientHelloResult {
  return new ClientHelloReader(Math.max(data.length, 1)).push(data);
}

/**
 * Reads a ClientHello as its bytes arrive: each byte is looked at once, however small the
 * pieces it comes in (re-parsing everything on each piece would let a client that sends one
 * byte at a time cost quadratic time). Holds at most `capacity` bytes: more is `oversized`.
 */
export class ClientHelloReader {
  /** Grows as bytes come (a typical ClientHello fits the first 2 KiB). */
  private buffer = Buffer.alloc(0);
  private length = 0;
  /** Where the next record starts. */
  private offset = 0;
  /** Where each record's fragment lies in the buffer (start, end): offsets survive its growth. */
  private readonly fragments: Array<readonly [number, number]> = [];
  private collected = 0;
  private needed: number | undefined;
  private result: ClientHelloResult = { kind: 'incomplete' };

  constructor(private readonly capacity = 2 * MAX_CLIENT_HELLO) {}

  /** Everything received so far (to replay to where the connection goes). */
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  push(chunk: Buffer): ClientHelloResult {
    if (this.result.kind !== 'incomplete') return this.result;
    const length = this.length + chunk.length;
    if (length > this.capacity) return (this.result = { kind: 'oversized' });
    if (length > this.buffer.length) {
      const grown = Buffer.alloc(Math.min(this.capacity, Math.max(2_048, length, 2 * this.buffer.length)));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    chunk.copy(this.buffer, this.length);
    this.length += chunk.length;
    return (this.result = this.advance());
  }

  /** The handshake bytes collected so far, in one buffer. */
  private handshake(): Buffer {
    return Buffer.concat(this.fragments.map(([start, end]) => this.buffer.subarray(start, end)));
  }

  private advance(): ClientHelloResult {
    const data = this.buffer;
    // Reassemble the handshake message from consecutive handshake records.
    while (this.needed === undefined || this.collected < this.needed) {
      if (this.length - this.offset < RECORD_HEADER) return { kind: 'incomplete' };
      if (data[this.offset] !== HANDSHAKE) return { kind: 'malformed', reason: 'not a TLS handshake record' };
      if (data[this.offset + 1] !== 0x03) return { kind: 'malformed', reason: 'not a TLS record version' };
      const length = data.readUInt16BE(this.offset + 3);
      if (length === 0 || length > MAX_RECORD) return { kind: 'malformed', reason: 'bad record length' };
      if (this.length - this.offset - RECORD_HEADER < length) return { kind: 'incomplete' };
      this.fragments.push([this.offset + RECORD_HEADER, this.offset + RECORD_HEADER + length]);
      this.collected += length;
      this.offset += RECORD_HEADER + length;
      if (this.needed === undefined && this.collected >= 4) {
        const head = this.handshake();
        if (head[0] !== CLIENT_HELLO)
          return { kind: 'malformed', reason: 'the first handshake is not a ClientHello' };
        this.needed = 4 + head.readUIntBE(1, 3);
        if (this.needed > MAX_CLIENT_HELLO) return { kind: 'oversized' };
      }
      if (this.needed === undefined && this.offset >= MAX_CLIENT_HELLO) return { kind: 'oversized' };
    }
    const message = this.handshake().subarray(4, this.needed);
    try {
      return { kind: 'hello', serverName: serverNameOf(new Reader(message)) };
    } catch (error) {
      if (error instanceof Malformed) return { kind: 'malformed', reason: error.message };
      throw error;
    }
  }
}

function serverNameOf(hello: Reader): string | undefined {
  if (hello.u8() !== 0x03) throw new Malformed('not a TLS ClientHello version');
  hello.u8();
  hello.take(32); // random
  const sessionId = hello.u8();
  if (sessionId > 32) throw new Malformed('session id longer than 32 bytes');
  hello.take(sessionId);
  const suites = hello.u16();
  if (suites < 2 || suites % 2 !== 0) throw new Malformed('bad cipher suite list');
  hello.take(suites);
  const compression = hello.u8();
  if (compression < 1) throw new Malformed('no compression methods');
  hello.take(compression);
  if (hello.remaining === 0) return undefined; // no extensions at all
  const extensions = new Reader(hello.take(hello.u16()));
  if (hello.remaining !== 0) throw new Malformed('bytes after the extensions');
  let serverName: string | undefined;
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const body = extensions.take(extensions.u16());
    if (seen.has(type)) throw new Malformed('an extension appears twice');
    seen.add(type);
    if (type !== SERVER_NAME) continue;
    const list = new Reader(body);
    const names = new Reader(list.take(list.u16()));
    if (list.remaining !== 0) throw new Malformed('bytes after the server name list');
    while (names.remaining > 0) {
      const nameType = names.u8();
      const name = names.take(names.u16());
      if (nameType !== 0) continue;
      if (serverName !== undefined) throw new Malformed('two host names');
      serverName = hostName(name);
    }
  }
  return serverName;
}

const HOST =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;

function hostName(bytes: Buffer): string {
  const text = bytes.toString('latin1');
  if (!HOST.test(text)) throw new Malformed('the server name is not a host name');
  return text.toLowerCase();
}
