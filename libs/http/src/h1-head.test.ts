import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createH1Limits, DEFAULT_H1_LIMITS } from './h1-limits.ts';
import {
  HeadScan,
  headerValue,
  parseRequestHead,
  parseResponseHead,
  type HeadResult,
  type RequestHead,
  type ResponseHead,
} from './h1-head.ts';

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');
const request = (text: string): HeadResult<RequestHead> => parseRequestHead(bytes(text), 0);
const response = (text: string, method = 'GET'): HeadResult<ResponseHead> =>
  parseResponseHead(bytes(text), 0, method);

function head<T>(result: HeadResult<T>, what = ''): T & { end: number } {
  assert.equal(result.kind, 'head', `${what} ${JSON.stringify(result)}`);
  return result as T & { kind: 'head'; end: number };
}

const GET = 'GET / HTTP/1.1\r\nHost: a.example\r\n';

test('valid requests: method, target, version, fields, framing and connection', () => {
  const cases: Array<[string, string, Partial<RequestHead>]> = [
    [
      'no body',
      `${GET}\r\n`,
      { method: 'GET', target: '/', version: 1, body: { type: 'none' }, keepAlive: true },
    ],
    [
      'Content-Length',
      'POST /orders?x=1&y=%20 HTTP/1.1\r\nHost: shop:8080\r\nContent-Length: 12\r\n\r\n',
      {
        method: 'POST',
        target: '/orders?x=1&y=%20',
        body: { type: 'length', length: 12 },
        host: 'shop:8080',
      },
    ],
    ['Content-Length 0', `${GET}Content-Length: 0\r\n\r\n`, { body: { type: 'length', length: 0 } }],
    ['leading zeros', `${GET}Content-Length: 007\r\n\r\n`, { body: { type: 'length', length: 7 } }],
    [
      'largest safe Content-Length',
      `${GET}Content-Length: 9007199254740991\r\n\r\n`,
      { body: { type: 'length', length: Number.MAX_SAFE_INTEGER } },
    ],
    ['chunked', `${GET}Transfer-Encoding: chunked\r\n\r\n`, { body: { type: 'chunked' } }],
    [
      'Content-Length with OWS',
      `${GET}Content-Length:\t 5  \r\n\r\n`,
      { body: { type: 'length', length: 5 } },
    ],
    [
      'Chunked, any case, with OWS',
      `${GET}transfer-encoding: \t ChUnKeD \r\n\r\n`,
      { body: { type: 'chunked' } },
    ],
    ['HTTP/1.0 without Host', 'GET /x HTTP/1.0\r\n\r\n', { version: 0, keepAlive: false, host: undefined }],
    [
      'HTTP/1.0 keep-alive',
      'GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n',
      { version: 0, keepAlive: true },
    ],
    ['HTTP/1.1 close', `${GET}Connection: keep-alive, CLOSE\r\n\r\n`, { keepAlive: false }],
    ['Connection list with OWS', `${GET}Connection: foo ,\tclose\r\n\r\n`, { keepAlive: false }],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'OPTIONS', target: '*' }],
    [
      'CONNECT authority-form',
      'CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n',
      { method: 'CONNECT', target: 'db.internal:5432', upgrade: true, body: { type: 'none' } },
    ],
    [
      'CONNECT with Content-Length: 0',
      'CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nContent-Length: 0\r\n\r\n',
      { upgrade: true, body: { type: 'none' }, host: '[::1]:443' },
    ],
    [
      'absolute-form',
      'GET http://a.example:81/p?q HTTP/1.1\r\nHost: a.example:81\r\n\r\n',
      { target: 'http://a.example:81/p?q' },
    ],
    ['absolute-form without path', 'GET https://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n', {}],
    [
      'WebSocket upgrade',
      `${GET}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      { upgrade: true, keepAlive: true },
    ],
    ['Upgrade without Connection: upgrade', `${GET}Upgrade: websocket\r\n\r\n`, { upgrade: false }],
    [
      'upgrade in HTTP/1.0 is ignored',
      'GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n',
      { upgrade: false },
    ],
    [
      'Expect: 100-continue',
      `${GET}Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n`,
      { expectContinue: true },
    ],
    [
      'Expect in HTTP/1.0 is ignored',
      'PUT / HTTP/1.0\r\nExpect: whatever\r\n\r\n',
      { expectContinue: false },
    ],
    ['one leading empty line is skipped', `\r\n${GET}\r\n`, { method: 'GET', end: GET.length + 4 } as never],
    ['M-SEARCH', 'M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'M-SEARCH', target: '/x' }],
    ['QUERY', 'QUERY /q HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'QUERY' }],
  ];
  for (const [name, text, expected] of cases) {
    const parsed = head(request(text), name);
    for (const [key, value] of Object.entries(expected))
      assert.deepEqual(parsed[key as keyof typeof parsed], value, `${name}: ${key}`);
    if (!('end' in expected)) assert.equal(parsed.end, bytes(text).length, `${name}: end`);
  }
});

test('field names are lower-cased, values lose surrounding OWS only, order and repeats are kept', () => {
  const parsed = head(
    request(
      'GET / HTTP/1.1\r\nHOST: a\r\nX-Custom-Thing:  two  words \t\r\nx-empty:\r\nSet-Cookie: a=1\r\n' +
        'set-cookie: b=2\r\nX-Latin: caf\xe9\r\nAccept:*/*\r\n\r\n',
    ),
  );
  assert.deepEqual(parsed.headers, [
    'host',
    'a',
    'x-custom-thing',
    'two  words',
    'x-empty',
    '',
    'set-cookie',
    'a=1',
    'set-cookie',
    'b=2',
    'x-latin',
    'caf\xe9',
    'accept',
    '*/*',
  ]);
  assert.equal(headerValue(parsed.headers, 'set-cookie'), 'a=1');
  assert.equal(headerValue(parsed.headers, 'x-missing'), undefined);
});

test('the head ends at the empty line; bytes after it are not looked at', () => {
  const text = `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\x00\r\nGET`;
  const parsed = head(request(text));
  assert.equal(parsed.end, text.length - 6);
  // Parsing from an offset reads the head that starts there.
  const two = bytes(`${GET}\r\nGET /second HTTP/1.1\r\nHost: b\r\n\r\n`);
  const first = head(parseRequestHead(two, 0));
  const second = head(parseRequestHead(two, first.end));
  assert.equal(second.target, '/second');
  assert.equal(second.end, two.length);
});

/** Request refusals: input, status, code. */
const REFUSED_REQUESTS: Array<[string, number, string]> = [
  // Line endings.
  ['GET / HTTP/1.1\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_BARE_LF'],
  ['GET / HTTP/1.1\r\nHost: a\n\r\n', 400, 'CAUSEWAY_H1_BARE_LF'],
  [`${GET}\n`, 400, 'CAUSEWAY_H1_BARE_LF'],
  [`${GET}X: a\nb\r\n\r\n`, 400, 'CAUSEWAY_H1_BARE_LF'],
  ['GET / HTTP/1.1\rHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_BARE_CR'],
  [`${GET}X: a\rb\r\n\r\n`, 400, 'CAUSEWAY_H1_BARE_CR'],
  [`${GET}X: a\r\r\n\r\n`, 400, 'CAUSEWAY_H1_BARE_CR'],
  [`${GET}\r\r\n`, 400, 'CAUSEWAY_H1_BARE_CR'],
  ['\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_BARE_LF'],
  ['\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_EMPTY_LINES'],
  ['\rGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_BARE_CR'],
  // Request line.
  ['GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_REQUEST_LINE_INVALID'],
  ['GET /  HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_VERSION_INVALID'],
  ['GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_REQUEST_LINE_INVALID'],
  [' GET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_METHOD_INVALID'],
  ['GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_METHOD_INVALID'],
  ['GET /\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_REQUEST_LINE_INVALID'],
  ['GET\r\n\r\n', 400, 'CAUSEWAY_H1_METHOD_INVALID'],
  ['G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_METHOD_INVALID'],
  ['get / HTTP/1.1\r\nHost: a\r\n\r\n', 501, 'CAUSEWAY_H1_METHOD_UNKNOWN'],
  ['BREW / HTTP/1.1\r\nHost: a\r\n\r\n', 501, 'CAUSEWAY_H1_METHOD_UNKNOWN'],
  ['GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET /a\x00 HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_VERSION_INVALID'],
  ['GET index.html HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET * HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['CONNECT a.example: HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET http://user@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET http:/a.example/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET urn:isbn:1 HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET h2c://a/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_TARGET_INVALID'],
  ['GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505, 'CAUSEWAY_H1_VERSION_UNSUPPORTED'],
  ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505, 'CAUSEWAY_H1_VERSION_UNSUPPORTED'],
  ['GET / HTTP/0.9\r\n\r\n', 505, 'CAUSEWAY_H1_VERSION_UNSUPPORTED'],
  ['GET / http/1.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_VERSION_INVALID'],
  ['GET / HTTP/1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_VERSION_INVALID'],
  ['GET / HTTP/11.1\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_VERSION_INVALID'],
  ['GET / HTTP/1.10\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_REQUEST_LINE_INVALID'],
  // Field lines.
  [`${GET}X: a\r\n b\r\n\r\n`, 400, 'CAUSEWAY_H1_OBS_FOLD'],
  [`${GET}X: a\r\n\tb\r\n\r\n`, 400, 'CAUSEWAY_H1_OBS_FOLD'],
  ['GET / HTTP/1.1\r\n Host: a\r\n\r\n', 400, 'CAUSEWAY_H1_OBS_FOLD'],
  [`${GET}X : a\r\n\r\n`, 400, 'CAUSEWAY_H1_SPACE_BEFORE_COLON'],
  [`${GET}X\t: a\r\n\r\n`, 400, 'CAUSEWAY_H1_SPACE_BEFORE_COLON'],
  [`${GET}: a\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_NAME_INVALID'],
  [`${GET}NoColon\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_NAME_INVALID'],
  [`${GET}X(y): a\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_NAME_INVALID'],
  [`${GET}X\xe9: a\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_NAME_INVALID'],
  [`${GET}X: a\x00b\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_VALUE_INVALID'],
  [`${GET}X: \x01\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_VALUE_INVALID'],
  [`${GET}X: a\x7f\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_VALUE_INVALID'],
  [`${GET}X: \x1b[31m\r\n\r\n`, 400, 'CAUSEWAY_H1_FIELD_VALUE_INVALID'],
  // Content-Length.
  [`${GET}Content-Length: +5\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: -5\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 1 2\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 0x10\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 5,5\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 5, 5\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 1e3\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length:\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 5\t\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 5 \t \r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  [`${GET}Content-Length: 5\r\nContent-Length: 5\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_DUPLICATE'],
  [`${GET}Content-Length: 5\r\ncontent-length: 6\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_DUPLICATE'],
  [`${GET}Content-Length: 9007199254740992\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_TOO_LARGE'],
  [`${GET}Content-Length: 99999999999999999999999\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_TOO_LARGE'],
  [`${GET}Content-Length: 99999999999999999999x\r\n\r\n`, 400, 'CAUSEWAY_H1_CONTENT_LENGTH_INVALID'],
  // Transfer-Encoding.
  [`${GET}Transfer-Encoding: chunked, chunked\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [
    `${GET}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
    'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID',
  ],
  [`${GET}Transfer-Encoding: xchunked\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: chunked;q=1\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: chunked,\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: "chunked"\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: chunked, gzip\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: identity\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding:\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: chunked\t\r\n\r\n`, 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_INVALID'],
  [`${GET}Transfer-Encoding: gzip, chunked\r\n\r\n`, 501, 'CAUSEWAY_H1_TRANSFER_CODING_UNSUPPORTED'],
  [
    `${GET}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n`,
    501,
    'CAUSEWAY_H1_TRANSFER_CODING_UNSUPPORTED',
  ],
  [
    `${GET}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n`,
    400,
    'CAUSEWAY_H1_TRANSFER_ENCODING_WITH_LENGTH',
  ],
  [
    `${GET}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
    'CAUSEWAY_H1_TRANSFER_ENCODING_WITH_LENGTH',
  ],
  ['POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'CAUSEWAY_H1_TRANSFER_ENCODING_HTTP10'],
  [`${GET}Transfer-Encoding : chunked\r\n\r\n`, 400, 'CAUSEWAY_H1_SPACE_BEFORE_COLON'],
  // Host.
  ['GET / HTTP/1.1\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_MISSING'],
  ['GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_DUPLICATE'],
  ['GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_DUPLICATE'],
  ['GET / HTTP/1.1\r\nHost:\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: a:\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: a%2\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  ['GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 400, 'CAUSEWAY_H1_HOST_INVALID'],
  // CONNECT and Expect.
  ['CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 5\r\n\r\n', 400, 'CAUSEWAY_H1_CONNECT_BODY'],
  [
    'CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\n\r\n',
    400,
    'CAUSEWAY_H1_CONNECT_BODY',
  ],
  [`${GET}Expect: 100-continue, foo\r\n\r\n`, 417, 'CAUSEWAY_H1_EXPECTATION_UNSUPPORTED'],
  [`${GET}Expect: 100-continue\r\nExpect: 100-continue\r\n\r\n`, 417, 'CAUSEWAY_H1_EXPECTATION_UNSUPPORTED'],
  [`${GET}Expect: foo\r\n\r\n`, 417, 'CAUSEWAY_H1_EXPECTATION_UNSUPPORTED'],
];

test('every request refusal rule answers its status and code', () => {
  for (const [text, status, code] of REFUSED_REQUESTS) {
    const result = request(text);
    assert.equal(result.kind, 'error', JSON.stringify(text));
    assert.deepEqual([result.status, result.code], [status, code], JSON.stringify(text));
  }
});

test('an error is reported as soon as the byte that breaks the grammar arrives', () => {
  assert.equal(request('GET / HTTP/1.1\r\nX: a\x00').kind, 'error');
  assert.equal(request('\x16\x03\x01\x02').kind, 'error');
  assert.equal(request('GET / HTTP/3x').kind, 'error');
  assert.equal(request('GET / HTTP/1.1\r\nHost: a\r\n').kind, 'incomplete');
  assert.equal(request('').kind, 'incomplete');
});

test('the head size limit: exactly maxHeadBytes is accepted, one byte more is 431, also before the end', () => {
  const limits = createH1Limits({ maxHeadBytes: 200 });
  const filler = (total: number) => {
    const base = `${GET}X: \r\n\r\n`;
    return `${GET}X: ${'v'.repeat(total - base.length)}\r\n\r\n`;
  };
  const exact = bytes(filler(200));
  assert.equal(exact.length, 200);
  assert.equal(head(parseRequestHead(exact, 0, limits)).end, 200);
  const over = parseRequestHead(bytes(filler(201)), 0, limits);
  assert.deepEqual([over.kind, over.kind === 'error' && over.status], ['error', 431]);
  // No end in sight: incomplete up to the limit, 431 past it.
  const endless = bytes(`${GET}X: ${'v'.repeat(500)}`);
  assert.equal(parseRequestHead(endless.subarray(0, 200), 0, limits).kind, 'incomplete');
  const early = parseRequestHead(endless.subarray(0, 201), 0, limits);
  assert.equal(early.kind === 'error' && early.code, 'CAUSEWAY_H1_HEAD_TOO_LARGE');
  // The default is Node's 16 KiB.
  assert.equal(DEFAULT_H1_LIMITS.maxHeadBytes, 16_384);
  const big = parseRequestHead(bytes(`${GET}X: ${'v'.repeat(16_400)}\r\n\r\n`), 0);
  assert.equal(big.kind === 'error' && big.status, 431);
});

test('the field count limit: 100 lines pass, the 101st is 431 before the head ends', () => {
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join('');
  const hundred = head(request(`${GET}${lines(99)}\r\n`));
  assert.equal(hundred.headers.length, 200);
  const tooMany = request(`${GET}${lines(100)}`);
  assert.equal(tooMany.kind === 'error' && tooMany.code, 'CAUSEWAY_H1_TOO_MANY_FIELDS');
  assert.equal(tooMany.kind === 'error' && tooMany.status, 431);
  const fewer = parseRequestHead(bytes(`${GET}${lines(5)}\r\n`), 0, createH1Limits({ maxHeaders: 5 }));
  assert.equal(fewer.kind === 'error' && fewer.code, 'CAUSEWAY_H1_TOO_MANY_FIELDS');
});

test('a start offset outside the buffer is an error, not a throw', () => {
  for (const start of [-1, 1.5, 100, Number.NaN]) {
    const result = parseRequestHead(bytes(GET), start);
    assert.equal(result.kind === 'error' && result.code, 'CAUSEWAY_H1_INVALID_OFFSET');
  }
});

test('createH1Limits checks each field once', () => {
  assert.throws(() => createH1Limits({ maxHeaders: 0 }), /maxHeaders must be a positive integer \(got 0\)/);
  assert.throws(() => createH1Limits({ maxHeadBytes: 1.5 }), /maxHeadBytes/);
  assert.ok(Object.isFrozen(createH1Limits()));
});

test('valid responses and their framing', () => {
  const cases: Array<[string, string, string, Partial<ResponseHead>]> = [
    [
      'Content-Length',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n',
      'GET',
      { status: 200, reason: 'OK', body: { type: 'length', length: 5 }, keepAlive: true },
    ],
    [
      'chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      'GET',
      { body: { type: 'chunked' } },
    ],
    [
      'gzip then chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n',
      'POST',
      { body: { type: 'chunked' } },
    ],
    [
      'a coding without chunked reads to close',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
      'GET',
      { body: { type: 'close' }, keepAlive: false },
    ],
    [
      'no framing reads to close',
      'HTTP/1.1 200 OK\r\n\r\n',
      'GET',
      { body: { type: 'close' }, keepAlive: false },
    ],
    [
      'HEAD',
      'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n',
      'HEAD',
      { body: { type: 'none' }, keepAlive: true },
    ],
    ['204', 'HTTP/1.1 204 No Content\r\n\r\n', 'DELETE', { body: { type: 'none' }, keepAlive: true }],
    ['304', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n', 'GET', { body: { type: 'none' } }],
    ['100', 'HTTP/1.1 100 Continue\r\n\r\n', 'PUT', { interim: true, body: { type: 'none' }, tunnel: false }],
    [
      '103',
      'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n',
      'GET',
      { interim: true, headers: ['link', '</a.css>; rel=preload'] },
    ],
    [
      '101',
      'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
      'GET',
      { tunnel: true, interim: false, body: { type: 'none' }, keepAlive: false },
    ],
    [
      'CONNECT 200 ignores framing fields',
      'HTTP/1.1 200 Connection Established\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'CONNECT',
      { tunnel: true, body: { type: 'none' } },
    ],
    [
      'CONNECT 407 is an ordinary response',
      'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n',
      'CONNECT',
      { tunnel: false, body: { type: 'length', length: 0 } },
    ],
    ['HTTP/1.0', 'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n', 'GET', { version: 0, keepAlive: false }],
    [
      'HTTP/1.0 keep-alive',
      'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n',
      'GET',
      { keepAlive: true },
    ],
    [
      'Connection: close',
      'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n',
      'GET',
      { keepAlive: false },
    ],
    ['no reason phrase', 'HTTP/1.1 204\r\n\r\n', 'GET', { status: 204, reason: '' }],
    ['empty reason phrase', 'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', 'GET', { reason: '' }],
    [
      'reason with obs-text',
      'HTTP/1.1 200 Tr\xe8s bien\r\nContent-Length: 0\r\n\r\n',
      'GET',
      { reason: 'Tr\xe8s bien' },
    ],
  ];
  for (const [name, text, method, expected] of cases) {
    const parsed = head(response(text, method), name);
    for (const [key, value] of Object.entries(expected))
      assert.deepEqual(parsed[key as keyof typeof parsed], value, `${name}: ${key}`);
    assert.equal(parsed.end, text.length, `${name}: end`);
  }
});

test('an interim response is followed by the final one, parsed from its end', () => {
  const text = bytes('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
  const interim = head(parseResponseHead(text, 0, 'POST'));
  assert.equal(interim.interim, true);
  const final = head(parseResponseHead(text, interim.end, 'POST'));
  assert.deepEqual(
    [final.status, final.body, final.end],
    [201, { type: 'length', length: 2 }, text.length - 2],
  );
});

test('every response refusal is a 502 with its code', () => {
  const cases: Array<[string, string]> = [
    [
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
      'TRANSFER_ENCODING_WITH_LENGTH',
    ],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'TRANSFER_ENCODING_INVALID'],
    [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      'TRANSFER_ENCODING_INVALID',
    ],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;level=1\r\n\r\n', 'TRANSFER_ENCODING_INVALID'],
    ['HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'TRANSFER_ENCODING_HTTP10'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n', 'CONTENT_LENGTH_DUPLICATE'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n', 'CONTENT_LENGTH_INVALID'],
    ['HTTP/1.1 304 OK\r\nContent-Length: x\r\n\r\n', 'CONTENT_LENGTH_INVALID'],
    ['HTTP/1.1 099 Low\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['HTTP/1.1 600 High\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['HTTP/1.1 20x OK\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['HTTP/1.1 2000 OK\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['HTTP/1.1  200 OK\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['HTTP/1.1 200 O\x01K\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['HTTP/1.1 200 OK\n\r\n', 'BARE_LF'],
    ['HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', 'OBS_FOLD'],
    ['HTTP/2.0 200 OK\r\n\r\n', 'VERSION_UNSUPPORTED'],
    ['HTTP/1.1\r\n\r\n', 'STATUS_LINE_INVALID'],
    ['\r\nHTTP/1.1 200 OK\r\n\r\n', 'VERSION_INVALID'],
    ['HTTP/1.1 200 OK\r\nX : 1\r\n\r\n', 'SPACE_BEFORE_COLON'],
  ];
  for (const [text, code] of cases) {
    const result = response(text);
    assert.equal(result.kind, 'error', JSON.stringify(text));
    assert.deepEqual([result.status, result.code], [502, `CAUSEWAY_H1_${code}`], JSON.stringify(text));
  }
});

const SPLIT_CASES = [
  'POST /upload?id=7 HTTP/1.1\r\nHost: files.example:8443\r\nUser-Agent: t\r\nX-Mixed-Case: Value With  Spaces \r\n' +
    'Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\nrest',
  '\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Empty:   \r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n',
];

test('a head split at every byte position reads the same as in one piece, with or without a HeadScan', () => {
  for (const text of SPLIT_CASES) {
    const whole = bytes(text);
    const once = parseRequestHead(whole, 0);
    for (let cut = 0; cut <= whole.length; cut++) {
      const scan = new HeadScan();
      const first = parseRequestHead(whole.subarray(0, cut), 0, undefined, scan);
      if (first.kind !== 'incomplete') {
        assert.deepEqual(first, once, `cut ${cut}`);
        continue;
      }
      // The second piece arrives in a new, larger buffer, as a caller that concatenates makes.
      const joined = Buffer.concat([whole.subarray(0, cut), whole.subarray(cut)]);
      assert.deepEqual(parseRequestHead(joined, 0, undefined, scan), once, `cut ${cut}`);
    }
  }
  const responseText = bytes('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc');
  const responseOnce = parseResponseHead(responseText, 0, 'GET');
  for (let cut = 0; cut <= responseText.length; cut++) {
    const scan = new HeadScan();
    const first = parseResponseHead(responseText.subarray(0, cut), 0, 'GET', undefined, scan);
    if (first.kind !== 'incomplete') assert.deepEqual(first, responseOnce);
    else assert.deepEqual(parseResponseHead(responseText, 0, 'GET', undefined, scan), responseOnce);
  }
});

test('one byte at a time through a HeadScan: incomplete until the last byte, then the same head', () => {
  const whole = bytes(SPLIT_CASES[0]!);
  const once = head(parseRequestHead(whole, 0));
  const scan = new HeadScan();
  for (let length = 0; length < once.end; length++)
    assert.equal(parseRequestHead(whole.subarray(0, length), 0, undefined, scan).kind, 'incomplete');
  assert.deepEqual(parseRequestHead(whole.subarray(0, once.end), 0, undefined, scan), once);
  // The scan reset itself: the next head on the connection parses from a new start.
  const next = bytes(`xx${GET}\r\n`);
  assert.equal(head(parseRequestHead(next, 2, undefined, scan)).end, next.length);
});

test('a slow peer costs linear time through a HeadScan', () => {
  const whole = bytes(`GET /${'a'.repeat(16_000)} HTTP/1.1\r\nHost: a\r\n\r\n`);
  const scan = new HeadScan();
  const started = performance.now();
  let result: HeadResult<RequestHead> = { kind: 'incomplete' };
  for (let length = 1; length <= whole.length; length++)
    result = parseRequestHead(whole.subarray(0, length), 0, undefined, scan);
  assert.equal(result.kind, 'head');
  // Quadratic rescanning would be 16k × 8k byte visits (~130M); linear is 16k.
  assert.ok(performance.now() - started < 1_000, `${performance.now() - started} ms`);
});
