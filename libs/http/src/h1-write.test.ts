import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRequestHead, parseResponseHead } from './h1-head.ts';
import { H1WriteError, writeRequestHead, writeResponseHead } from './h1-write.ts';

test('a request head is the request line, one line per field, and an empty line', () => {
  const head = writeRequestHead('POST', '/orders?id=1', [
    'host',
    'shop:8080',
    'content-length',
    '2',
    'x-empty',
    '',
  ]);
  assert.equal(
    head.toString('latin1'),
    'POST /orders?id=1 HTTP/1.1\r\nhost: shop:8080\r\ncontent-length: 2\r\nx-empty: \r\n\r\n',
  );
  assert.equal(writeRequestHead('GET', '/', []).toString('latin1'), 'GET / HTTP/1.1\r\n\r\n');
  assert.equal(writeRequestHead('GET', '/', [], 0).toString('latin1'), 'GET / HTTP/1.0\r\n\r\n');
});

test('a response head is the status line, the fields and an empty line; obs-text stays one byte', () => {
  const head = writeResponseHead(200, 'OK', [
    'content-type',
    'text/plain; charset=latin1',
    'x-name',
    'caf\xe9',
  ]);
  assert.deepEqual(
    head,
    Buffer.from(
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=latin1\r\nx-name: caf\xe9\r\n\r\n',
      'latin1',
    ),
  );
  assert.equal(writeResponseHead(204, '', []).toString('latin1'), 'HTTP/1.1 204 \r\n\r\n');
});

test('what the writer writes, the parser reads back unchanged', () => {
  const fields = [
    'host',
    'a.example',
    'x-list',
    'a, b;q=0.5',
    'transfer-encoding',
    'chunked',
    'x-tab',
    'a\tb',
  ];
  const request = parseRequestHead(writeRequestHead('PUT', '/a/b?c', fields), 0);
  assert.equal(request.kind, 'head');
  assert.deepEqual(
    [request.method, request.target, request.headers, request.body],
    ['PUT', '/a/b?c', fields, { type: 'chunked' }],
  );
  const response = parseResponseHead(
    writeResponseHead(503, 'Service Unavailable', ['retry-after', '5']),
    0,
    'GET',
  );
  assert.equal(response.kind, 'head');
  assert.deepEqual(
    [response.status, response.reason, response.headers],
    [503, 'Service Unavailable', ['retry-after', '5']],
  );
});

test('a part that could split or smuggle a message is refused, never written', () => {
  const refused: Array<[string, () => Buffer]> = [
    ['CRLF in a value', () => writeRequestHead('GET', '/', ['x', 'a\r\nHost: evil'])],
    ['LF in a value', () => writeRequestHead('GET', '/', ['x', 'a\nb'])],
    ['NUL in a value', () => writeRequestHead('GET', '/', ['x', 'a\x00'])],
    // U+010A would be written as the single byte 0x0A by a latin1 encoder.
    ['a char above 0xFF', () => writeRequestHead('GET', '/', ['x', '\u010d\u010a'])],
    ['a space in a name', () => writeRequestHead('GET', '/', ['x y', '1'])],
    ['a colon in a name', () => writeRequestHead('GET', '/', ['x:', '1'])],
    ['an empty name', () => writeRequestHead('GET', '/', ['', '1'])],
    ['an odd field list', () => writeRequestHead('GET', '/', ['x'])],
    ['a method with a space', () => writeRequestHead('GET /', '/', [])],
    ['an empty method', () => writeRequestHead('', '/', [])],
    ['a target with a space', () => writeRequestHead('GET', '/a b', [])],
    ['a target with a fragment', () => writeRequestHead('GET', '/a#b', [])],
    ['an empty target', () => writeRequestHead('GET', '', [])],
    ['a status below 100', () => writeResponseHead(99, 'x', [])],
    ['a status above 599', () => writeResponseHead(600, 'x', [])],
    ['a fractional status', () => writeResponseHead(200.5, 'x', [])],
    ['CRLF in a reason', () => writeResponseHead(200, 'OK\r\nX: y', [])],
  ];
  for (const [what, write] of refused)
    assert.throws(
      write,
      (error: unknown) => error instanceof H1WriteError && error.code === 'CAUSEWAY_H1_WRITE_INVALID',
      what,
    );
});
