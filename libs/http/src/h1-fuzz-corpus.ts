/**
 * Test inputs shared by the property tests and the differential test against Node's parser:
 * valid requests of every framing, and mutations of them that aim at the framing rules.
 */
import fc from 'fast-check';

/** Valid requests, each with its body, covering every framing and start-line form. */
export const VALID_REQUESTS: readonly string[] = [
  'GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: api.example:8080\r\nUser-Agent: probe/1\r\nAccept: */*\r\n\r\n',
  'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"id":"a-1"}\n',
  'PUT /blob HTTP/1.1\r\nHost: files\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 2\r\n\r\n',
  'GET /legacy HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'DELETE http://store.example/items/7 HTTP/1.1\r\nHost: store.example\r\nConnection: close\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /chat HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'PATCH /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nX-Empty:\r\n\r\nok',
  'CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n',
  'GET http://[::1]:8080/a?b HTTP/1.1\r\nHost: [::1]:8080\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n',
  'POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b\\"c"\r\nx\r\nA\r\n0123456789\r\n0\r\n\r\n',
];

/** Bytes that matter to framing and line syntax, inserted more often than chance would. */
const SHARP_BYTES = [
  0x0d, 0x0a, 0x20, 0x09, 0x00, 0x3a, 0x2c, 0x3b, 0x2b, 0x2d, 0x22, 0x7f, 0x80, 0xff, 0x0b,
];

export type Mutation =
  | { readonly op: 'set'; readonly at: number; readonly byte: number }
  | { readonly op: 'insert'; readonly at: number; readonly byte: number }
  | { readonly op: 'delete'; readonly at: number }
  | { readonly op: 'duplicateLine'; readonly at: number }
  | { readonly op: 'toggleCase'; readonly at: number };

export const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.constantFrom(...SHARP_BYTES) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('duplicateLine' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('toggleCase' as const), at: fc.nat() }),
);

/** `message` with `mutations` applied in order (positions wrap around its length). */
export function mutate(message: Buffer, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(message);
  for (const mutation of mutations) {
    const at = bytes.length === 0 ? 0 : mutation.at % bytes.length;
    switch (mutation.op) {
      case 'set':
        if (bytes.length > 0) bytes[at] = mutation.byte;
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([mutation.byte]), bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
        break;
      case 'duplicateLine': {
        const lineStart = bytes.lastIndexOf(0x0a, at - 1) + 1;
        const next = bytes.indexOf(0x0a, at);
        const lineEnd = next < 0 ? bytes.length : next + 1;
        bytes = Buffer.concat([
          bytes.subarray(0, lineEnd),
          bytes.subarray(lineStart, lineEnd),
          bytes.subarray(lineEnd),
        ]);
        break;
      }
      case 'toggleCase': {
        const c = bytes[at];
        if (c !== undefined && ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a))) bytes[at] = c ^ 0x20;
        break;
      }
    }
  }
  return bytes;
}

/** A valid request with one to three mutations. */
export const mutatedRequestArbitrary: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom(...VALID_REQUESTS), fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }))
  .map(([text, mutations]) => mutate(Buffer.from(text, 'latin1'), mutations));

/** Valid responses (to GET) of every framing, interim responses included. */
export const VALID_RESPONSES: readonly string[] = [
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n',
  'HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n',
  'HTTP/1.1 200 OK\r\nServer: t\r\n\r\nuntil the end',
];

/** A valid response with one to three mutations. */
export const mutatedResponseArbitrary: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom(...VALID_RESPONSES), fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }))
  .map(([text, mutations]) => mutate(Buffer.from(text, 'latin1'), mutations));
