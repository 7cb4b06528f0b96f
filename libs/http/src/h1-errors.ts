/**
 * Why an HTTP/1.1 message was refused: a stable code, the status to answer the peer with, and
 * a reason for logs. Request problems map to 4xx/5xx for the client; every problem in a
 * response maps to 502, the status a proxy answers when its upstream misbehaves.
 */
export interface H1Error {
  /** The status to answer with: 400, 417, 431, 501 or 505 for a request; 502 for a response. */
  readonly status: number;
  readonly code: H1ErrorCode;
  readonly reason: string;
}

const CATALOG = {
  CAUSEWAY_H1_BARE_LF: [400, 'a line ends with LF without CR'],
  CAUSEWAY_H1_BARE_CR: [400, 'a CR is not followed by LF'],
  CAUSEWAY_H1_EMPTY_LINES: [400, 'more than one empty line before the request line'],
  CAUSEWAY_H1_METHOD_INVALID: [400, 'the method is not a token followed by one space'],
  CAUSEWAY_H1_METHOD_UNKNOWN: [501, 'the method is not one this proxy forwards'],
  CAUSEWAY_H1_TARGET_INVALID: [400, 'the request-target is not in a form the method allows'],
  CAUSEWAY_H1_REQUEST_LINE_INVALID: [400, 'the request line is not method SP target SP version CRLF'],
  CAUSEWAY_H1_VERSION_INVALID: [400, 'the HTTP version is malformed'],
  CAUSEWAY_H1_VERSION_UNSUPPORTED: [505, 'only HTTP/1.0 and HTTP/1.1 are spoken'],
  CAUSEWAY_H1_STATUS_LINE_INVALID: [502, 'the status line is not version SP 3DIGIT SP reason CRLF'],
  CAUSEWAY_H1_OBS_FOLD: [400, 'a field line starts with whitespace (obsolete line folding)'],
  CAUSEWAY_H1_FIELD_NAME_INVALID: [400, 'a field name is empty, not a token, or has no colon'],
  CAUSEWAY_H1_SPACE_BEFORE_COLON: [400, 'whitespace between a field name and its colon'],
  CAUSEWAY_H1_FIELD_VALUE_INVALID: [400, 'a field value holds a control character'],
  CAUSEWAY_H1_HEAD_TOO_LARGE: [431, 'the head is larger than allowed'],
  CAUSEWAY_H1_TOO_MANY_FIELDS: [431, 'more field lines than allowed'],
  CAUSEWAY_H1_CONTENT_LENGTH_INVALID: [400, 'Content-Length is not a single run of digits'],
  CAUSEWAY_H1_CONTENT_LENGTH_DUPLICATE: [400, 'more than one Content-Length field'],
  CAUSEWAY_H1_CONTENT_LENGTH_TOO_LARGE: [400, 'Content-Length is larger than 2^53 - 1'],
  CAUSEWAY_H1_TRANSFER_ENCODING_INVALID: [400, 'Transfer-Encoding is not exactly one "chunked"'],
  CAUSEWAY_H1_TRANSFER_CODING_UNSUPPORTED: [501, 'a transfer coding other than chunked'],
  CAUSEWAY_H1_TRANSFER_ENCODING_WITH_LENGTH: [400, 'both Transfer-Encoding and Content-Length'],
  CAUSEWAY_H1_TRANSFER_ENCODING_HTTP10: [400, 'Transfer-Encoding in an HTTP/1.0 message'],
  CAUSEWAY_H1_HOST_MISSING: [400, 'an HTTP/1.1 request without Host'],
  CAUSEWAY_H1_HOST_DUPLICATE: [400, 'more than one Host field'],
  CAUSEWAY_H1_HOST_INVALID: [400, 'Host is not uri-host [":" port]'],
  CAUSEWAY_H1_CONNECT_BODY: [400, 'a CONNECT request with content'],
  CAUSEWAY_H1_EXPECTATION_UNSUPPORTED: [417, 'an expectation other than 100-continue'],
  CAUSEWAY_H1_CHUNK_SIZE_INVALID: [400, 'a chunk size is not 1*HEXDIG'],
  CAUSEWAY_H1_CHUNK_SIZE_TOO_LARGE: [400, 'a chunk size is larger than 2^53 - 1'],
  CAUSEWAY_H1_CHUNK_EXTENSION_INVALID: [400, 'a chunk extension is malformed'],
  CAUSEWAY_H1_CHUNK_LINE_TOO_LONG: [400, 'a chunk-size line is longer than allowed'],
  CAUSEWAY_H1_CHUNK_DATA_CRLF: [400, 'chunk data is not followed by CRLF'],
  CAUSEWAY_H1_TRAILER_TOO_LARGE: [431, 'the trailer section is larger than allowed'],
  CAUSEWAY_H1_BODY_TRUNCATED: [400, 'the connection ended inside the body'],
  CAUSEWAY_H1_INVALID_OFFSET: [500, 'the start offset is outside the buffer (a caller bug)'],
} as const satisfies Record<string, readonly [number, string]>;

export type H1ErrorCode = keyof typeof CATALOG;

function build(inResponse: boolean): Readonly<Record<H1ErrorCode, H1Error>> {
  const out = {} as Record<H1ErrorCode, H1Error>;
  for (const code of Object.keys(CATALOG) as H1ErrorCode[]) {
    const [status, reason] = CATALOG[code];
    out[code] = Object.freeze({ status: inResponse && status !== 500 ? 502 : status, code, reason });
  }
  return Object.freeze(out);
}

/** Each error as met in a request. */
export const REQUEST_ERRORS = build(false);
/** Each error as met in a response: 502 (except a caller bug, 500). */
export const RESPONSE_ERRORS = build(true);
