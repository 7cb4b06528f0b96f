import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { BodyTracker } from './h1-body.ts';
import { mutatedRequestArbitrary, mutatedResponseArbitrary } from './h1-fuzz-corpus.ts';
import { parseRequestHead, parseResponseHead } from './h1-head.ts';

/** One input to send; `valid` marks plainly valid RFC 9112 requests, which we must accept. */
interface Case {
  readonly name: string;
  readonly input: Buffer;
  readonly valid?: boolean;
}

const at = (text: string): Buffer => Buffer.from(text, 'latin1');
const HOST = 'Host: a.example\r\n';
const post = (fields: string, body = ''): Buffer => at(`POST /p HTTP/1.1\r\n${HOST}${fields}\r\n${body}`);
const get = (fields: string): Buffer => at(`GET / HTTP/1.1\r\n${HOST}${fields}\r\n`);
const chunked = (body: string): Buffer => post('Transfer-Encoding: chunked\r\n', body);
const withFieldLines = (count: number): Buffer =>
  get(Array.from({ length: count - 1 }, (_, i) => `X-F${i}: ${i}\r\n`).join(''));
/** A GET whose head is `total` bytes long, padded in one field value. */
const headOfSize = (total: number): Buffer => {
  const bare = `GET / HTTP/1.1\r\n${HOST}X-Pad: \r\n\r\n`;
  return get(`X-Pad: ${'p'.repeat(total - bare.length)}\r\n`);
};

const valid = (name: string, input: Buffer): Case => ({ name, input, valid: true });
const probe = (name: string, input: Buffer): Case => ({ name, input });

const HANDWRITTEN: readonly Case[] = [
  valid('GET', get('')),
  valid('POST with Content-Length', post('Content-Length: 5\r\n', 'hello')),
  valid('Content-Length with OWS', post('Content-Length: \t 5  \r\n', 'hello')),
  valid('Content-Length with leading zeros', post('Content-Length: 005\r\n', 'hello')),
  valid('Content-Length 0', post('Content-Length: 0\r\n')),
  valid('chunked', chunked('5\r\nhello\r\n0\r\n\r\n')),
  valid('Chunked in mixed case', post('Transfer-Encoding: ChUnKeD\r\n', '5\r\nhello\r\n0\r\n\r\n')),
  valid('TE value after extra spaces', post('Transfer-Encoding:   chunked\r\n', '0\r\n\r\n')),
  valid('TE value after a tab', post('Transfer-Encoding:\tchunked\r\n', '0\r\n\r\n')),
  valid(
    'chunk extensions and trailers',
    chunked('3;a=1;b="x;y"\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 9\r\n\r\n'),
  ),
  valid('HTTP/1.0 without Host', at('GET /old HTTP/1.0\r\n\r\n')),
  valid('HTTP/1.0 keep-alive', at('GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')),
  valid('absolute-form', at(`GET http://a.example/x?y=1 HTTP/1.1\r\n${HOST}\r\n`)),
  valid('absolute-form https with port', at(`GET https://a.example:8443/ HTTP/1.1\r\n${HOST}\r\n`)),
  valid('absolute-form, upper-case scheme', at(`GET HTTP://a.example/ HTTP/1.1\r\n${HOST}\r\n`)),
  valid('OPTIONS *', at(`OPTIONS * HTTP/1.1\r\n${HOST}\r\n`)),
  valid('CONNECT', at('CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n')),
  valid('WebSocket upgrade', get('Connection: Upgrade\r\nUpgrade: websocket\r\n')),
  valid('Expect: 100-continue', post('Expect: 100-continue\r\nContent-Length: 2\r\n', 'ok')),
  valid('obs-text in a value', get('X-Name: caf\xe9\r\n')),
  valid('spaces and tabs inside a value', get('X-Text: a \t b\r\n')),
  valid('empty value', get('X-Empty:\r\n')),
  valid('one leading empty line', at(`\r\nGET / HTTP/1.1\r\n${HOST}\r\n`)),
  valid('IPv6 Host', at('GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n')),
  valid('99 field lines', withFieldLines(99)),
  valid('100 field lines', withFieldLines(100)),
  valid('head of 16000 bytes', headOfSize(16_000)),
  valid('head of 16384 bytes', headOfSize(16_384)),
  probe('101 field lines', withFieldLines(101)),
  probe('130 field lines', withFieldLines(130)),
  probe('head of 16385 bytes', headOfSize(16_385)),
  probe('head of 16500 bytes', headOfSize(16_500)),
  probe('head of 20000 bytes', headOfSize(20_000)),
  probe('200 field lines of 100 bytes', withFieldLines(200)),
  // Content-Length and Transfer-Encoding together or malformed.
  probe('CL then TE', post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')),
  probe('TE then CL', post('Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', '0\r\n\r\n')),
  probe('TE: chunked, chunked', post('Transfer-Encoding: chunked, chunked\r\n', '0\r\n\r\n')),
  probe('TE twice', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')),
  probe('TE: xchunked', post('Transfer-Encoding: xchunked\r\n', '0\r\n\r\n')),
  probe('TE: chunkedx', post('Transfer-Encoding: chunkedx\r\n', '0\r\n\r\n')),
  probe('TE: chunked;x=1', post('Transfer-Encoding: chunked;x=1\r\n', '0\r\n\r\n')),
  probe('TE: identity', post('Transfer-Encoding: identity\r\n', 'hello')),
  probe('TE: gzip, chunked', post('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n')),
  probe('TE: chunked, identity', post('Transfer-Encoding: chunked, identity\r\n', '0\r\n\r\n')),
  probe('TE: "chunked"', post('Transfer-Encoding: "chunked"\r\n', '0\r\n\r\n')),
  probe('TE value with a vertical tab', post('Transfer-Encoding: chunked\x0b\r\n', '0\r\n\r\n')),
  probe('TE folded onto the previous line', post('X: y\r\n Transfer-Encoding: chunked\r\n', '0\r\n\r\n')),
  probe('TE line starting with a space', post(' Transfer-Encoding: chunked\r\n', '0\r\n\r\n')),
  probe('TE name then space', post('Transfer-Encoding : chunked\r\n', '0\r\n\r\n')),
  probe('TE name then tab', post('Transfer-Encoding\t: chunked\r\n', '0\r\n\r\n')),
  probe('TE in HTTP/1.0', at('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')),
  probe('CL: +5', post('Content-Length: +5\r\n', 'hello')),
  probe('CL: -5', post('Content-Length: -5\r\n', 'hello')),
  probe('CL: 5 5', post('Content-Length: 5 5\r\n', 'hello')),
  probe('CL: 0x5', post('Content-Length: 0x5\r\n', 'hello')),
  probe('CL: 5,5', post('Content-Length: 5,5\r\n', 'hello')),
  probe('CL: 5, 5', post('Content-Length: 5, 5\r\n', 'hello')),
  probe('CL twice, equal', post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello')),
  probe('CL twice, different', post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!')),
  probe('CL: 2^64', post('Content-Length: 18446744073709551616\r\n', 'hello')),
  probe('CL: 2^53', post('Content-Length: 9007199254740992\r\n', 'hello')),
  probe('CL: empty', post('Content-Length:\r\n', '')),
  probe('CL folded', post('Content-Length: 5\r\n 5\r\n', 'hello')),
  probe('CL then a tab', post('Content-Length: 5\t\r\n', 'hello')),
  probe('TE then a tab', post('Transfer-Encoding: chunked \t\r\n', '0\r\n\r\n')),
  probe('absolute-form, scheme with a digit', at(`GET h2://a.example/ HTTP/1.1\r\n${HOST}\r\n`)),
  // Line endings and control bytes.
  probe('bare LF after the request line', at(`GET / HTTP/1.1\n${HOST}\r\n`)),
  probe('bare LF after a field', at(`GET / HTTP/1.1\r\nHost: a.example\n\r\n`)),
  probe('bare LF as the empty line', at(`GET / HTTP/1.1\r\n${HOST}\n`)),
  probe('all bare LF', at('GET / HTTP/1.1\nHost: a.example\n\n')),
  probe('bare CR after the request line', at(`GET / HTTP/1.1\r${HOST}\r\n`)),
  probe('bare CR inside a value', get('X: a\rb\r\n')),
  probe('CR CR LF', get('X: a\r\r\n')),
  probe('obs-fold', get('X: a\r\n b\r\n')),
  probe('obs-fold with a tab', get('X: a\r\n\tb\r\n')),
  probe('whitespace before the first field', at(`GET / HTTP/1.1\r\n ${HOST}\r\n`)),
  probe('NUL in a value', get('X: a\x00b\r\n')),
  probe('NUL in a name', get('X\x00: a\r\n')),
  probe('NUL in the target', at(`GET /a\x00 HTTP/1.1\r\n${HOST}\r\n`)),
  probe('DEL in a value', get('X: a\x7f\r\n')),
  probe('SOH in a value', get('X: \x01\r\n')),
  probe('vertical tab in a value', get('X: a\x0bb\r\n')),
  probe('form feed in a value', get('X: a\x0cb\r\n')),
  probe('space before colon', get('X : a\r\n')),
  probe('tab before colon', get('X\t: a\r\n')),
  probe('empty field name', get(': a\r\n')),
  probe('no colon', get('NoColon\r\n')),
  probe('non-token name', get('X(y): a\r\n')),
  probe('non-ASCII name', get('X\xe9: a\r\n')),
  // Chunked bodies.
  probe('chunk size g', chunked('g\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size -1', chunked('-1\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size with leading space', chunked(' 5\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size with trailing space', chunked('5 \r\nhello\r\n0\r\n\r\n')),
  probe('chunk size 0x5', chunked('0x5\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size overflow', chunked('ffffffffffffffffff\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size 2^64', chunked('10000000000000000\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size 2^53', chunked('20000000000000\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size empty', chunked('\r\nhello\r\n0\r\n\r\n')),
  probe('chunk size bare LF', chunked('5\nhello\r\n0\r\n\r\n')),
  probe('chunk extension after a space', chunked('5 ;a=1\r\nhello\r\n0\r\n\r\n')),
  probe('chunk extension without a name', chunked('5;\r\nhello\r\n0\r\n\r\n')),
  probe('chunk extension with a space inside', chunked('5;a b\r\nhello\r\n0\r\n\r\n')),
  probe('chunk extension with NUL', chunked('5;a\x00\r\nhello\r\n0\r\n\r\n')),
  probe('chunk extension unterminated quote', chunked('5;a="x\r\nhello\r\n0\r\n\r\n')),
  probe('chunk data too long', chunked('5\r\nhello!\r\n0\r\n\r\n')),
  probe('chunk data too short', chunked('5\r\nhell\r\n0\r\n\r\n')),
  probe('chunk data then LF only', chunked('5\r\nhello\n0\r\n\r\n')),
  probe('missing final CRLF', chunked('5\r\nhello\r\n0\r\n')),
  probe('missing last chunk', chunked('5\r\nhello\r\n')),
  probe('trailer obs-fold', chunked('0\r\nX: a\r\n b\r\n\r\n')),
  probe('trailer bare LF', chunked('0\r\nX: a\n\r\n')),
  probe('trailer NUL', chunked('0\r\nX: a\x00\r\n\r\n')),
  probe('trailer space before colon', chunked('0\r\nX : a\r\n\r\n')),
  probe('last chunk with extension', chunked('0;last=1\r\n\r\n')),
  probe('huge chunk extension', chunked(`5;a=${'x'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`)),
  // Host.
  probe('missing Host', at('GET / HTTP/1.1\r\n\r\n')),
  probe('two Hosts', at(`GET / HTTP/1.1\r\n${HOST}${HOST}\r\n`)),
  probe('two different Hosts', at(`GET / HTTP/1.1\r\n${HOST}Host: b.example\r\n\r\n`)),
  probe('empty Host', at('GET / HTTP/1.1\r\nHost:\r\n\r\n')),
  probe('Host with a space', at('GET / HTTP/1.1\r\nHost: a b\r\n\r\n')),
  probe('Host with userinfo', at('GET / HTTP/1.1\r\nHost: u@a\r\n\r\n')),
  // Request line.
  probe('lower-case method', at(`get / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('unknown method', at(`BREW / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('method with (', at(`G(T / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('no method', at(` / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('two spaces after the method', at(`GET  / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('two spaces before the version', at(`GET /  HTTP/1.1\r\n${HOST}\r\n`)),
  probe('space after the version', at(`GET / HTTP/1.1 \r\n${HOST}\r\n`)),
  probe('tab as separator', at(`GET\t/ HTTP/1.1\r\n${HOST}\r\n`)),
  probe('fragment in the target', at(`GET /a#b HTTP/1.1\r\n${HOST}\r\n`)),
  probe('non-ASCII target', at(`GET /caf\xe9 HTTP/1.1\r\n${HOST}\r\n`)),
  probe('target without a slash', at(`GET a HTTP/1.1\r\n${HOST}\r\n`)),
  probe('* for GET', at(`GET * HTTP/1.1\r\n${HOST}\r\n`)),
  probe('absolute-form with userinfo', at(`GET http://u@a.example/ HTTP/1.1\r\n${HOST}\r\n`)),
  probe('absolute-form ftp', at(`GET ftp://a.example/x HTTP/1.1\r\n${HOST}\r\n`)),
  probe('absolute-form with one slash', at(`GET http:/a.example/ HTTP/1.1\r\n${HOST}\r\n`)),
  probe('absolute-form without a path', at(`GET http://a.example HTTP/1.1\r\n${HOST}\r\n`)),
  probe('CONNECT to a path', at(`CONNECT / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('CONNECT without a port', at(`CONNECT a.example HTTP/1.1\r\n${HOST}\r\n`)),
  probe('CONNECT with a body', at(`CONNECT a.example:443 HTTP/1.1\r\n${HOST}Content-Length: 2\r\n\r\nhi`)),
  probe('HTTP/1.2', at(`GET / HTTP/1.2\r\n${HOST}\r\n`)),
  probe('HTTP/2.0', at(`GET / HTTP/2.0\r\n${HOST}\r\n`)),
  probe('HTTP/0.9', at('GET / HTTP/0.9\r\n\r\n')),
  probe('lower-case version', at(`GET / http/1.1\r\n${HOST}\r\n`)),
  probe('HTTP/1.10', at(`GET / HTTP/1.10\r\n${HOST}\r\n`)),
  probe('two leading empty lines', at(`\r\n\r\nGET / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('leading bare LF', at(`\nGET / HTTP/1.1\r\n${HOST}\r\n`)),
  probe('Expect: foo', get('Expect: foo\r\n')),
  probe('Expect twice', get('Expect: 100-continue\r\nExpect: 100-continue\r\n')),
  probe('HTTP/1.0 upgrade', at('GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n')),
  probe('incomplete head', at(`GET / HTTP/1.1\r\n${HOST}`)),
  probe('TLS ClientHello', Buffer.from('16030100a5010000a10303', 'hex')),
];

/** Mutations of valid requests, the same ones every run. */
const GENERATED: readonly Case[] = fc
  .sample(mutatedRequestArbitrary, { numRuns: 300, seed: 9112 })
  .map((input, i) => probe(`mutation ${i}`, input));

interface Parsed {
  readonly method: string;
  readonly target: string;
  /** Flat names (lower-case) and values. */
  readonly headers: readonly string[];
  /** The decoded body, or undefined for a tunnel (its bytes are not a body). */
  readonly body: Buffer | undefined;
}
type Verdict =
  /** `length`: where the first message ends (bytes after it would be the next request). */
  | { readonly accepted: true; readonly parsed: Parsed; readonly length: number }
  | { readonly accepted: false; readonly why: string };

/** The body bytes of a chunked body that BodyTracker has already checked. */
function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', i);
    const size = Number.parseInt(raw.toString('latin1', i, lineEnd).split(';')[0]!, 16);
    i = lineEnd + 2;
    if (size === 0) return Buffer.concat(parts);
    parts.push(raw.subarray(i, i + size));
    i += size + 2;
  }
}

/** What our parser makes of `input` arriving whole on a connection that then ends. */
function ours(input: Buffer): Verdict {
  const head = parseRequestHead(input, 0);
  if (head.kind !== 'head') return { accepted: false, why: head.kind === 'error' ? head.code : 'incomplete' };
  let body: Buffer | undefined;
  let length = head.end;
  if (!head.upgrade) {
    const tracker = new BodyTracker(head.body);
    const progress = tracker.feed(input, head.end);
    if ('error' in progress) return { accepted: false, why: progress.error.code };
    if (!progress.done) return { accepted: false, why: 'CAUSEWAY_H1_BODY_TRUNCATED' };
    length += progress.consumed;
    const raw = input.subarray(head.end, length);
    body = head.body.type === 'chunked' ? dechunk(raw) : raw;
  } else length = input.length;
  const parsed = { method: head.method, target: head.target, headers: head.headers, body };
  return { accepted: true, parsed, length };
}

let server: http.Server;
let port = 0;

function reply(socket: NodeJS.WritableStream, answer: object): void {
  const json = JSON.stringify(answer);
  socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
}

before(async () => {
  // Node's defaults: strict parser, Host required, 16 KiB heads. Each answer is written as soon
  // as the request has been read, before the client's end of input is processed.
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const json = JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.rawHeaders,
        body: Buffer.concat(chunks).toString('base64'),
      });
      res.writeHead(200, { 'content-length': Buffer.byteLength(json) }).end(json);
    });
  });
  // Upgrades and CONNECT are answered too, so that only the parser decides what is refused.
  const tunnel = (req: http.IncomingMessage, socket: net.Socket) =>
    reply(socket, { method: req.method, url: req.url, headers: req.rawHeaders, tunnel: true });
  server.on('upgrade', tunnel);
  server.on('connect', tunnel);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Node's verdict: its parsed request on a 200, else the status it answered (0: none). */
async function node(input: Buffer): Promise<{ status: number; parsed?: Parsed }> {
  const answer = await new Promise<Buffer>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.end(input);
  });
  // Skip interim responses (100 Continue) to the final one.
  let text = answer.toString('latin1');
  while (/^HTTP\/1\.1 1\d\d /.test(text)) text = text.slice(text.indexOf('\r\n\r\n') + 4);
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  if (status !== 200) return { status };
  const json = JSON.parse(Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4), 'latin1').toString()) as {
    method: string;
    url: string;
    headers: string[];
    body?: string;
    tunnel?: true;
  };
  return {
    status,
    parsed: {
      method: json.method,
      target: json.url,
      headers: json.headers.map((value, i) => (i % 2 === 0 ? value.toLowerCase() : value)),
      body: json.tunnel ? undefined : Buffer.from(json.body ?? '', 'base64'),
    },
  };
}

/** Runs `work` over `items` with at most `width` at a time. */
async function pooled<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

test('we refuse everything Node refuses, and read what both accept the same way', async () => {
  const cases = [...HANDWRITTEN, ...GENERATED];
  const outcomes = await pooled(cases, 8, async (item) => {
    const mine = ours(item.input);
    // Node is sent only the first message we see: bytes after it would be a second request,
    // and Node refusing that one first says nothing about the first. If Node frames the first
    // message longer or shorter than we do, it refuses or reads a different body: both caught.
    const theirs = await node(mine.accepted ? item.input.subarray(0, mine.length) : item.input);
    return { item, mine, theirs };
  });
  const tally = { agreeAccept: 0, bothRefuse: 0, weRefuseMore: 0 };
  const stricter: string[] = [];
  const problems: string[] = [];
  for (const { item, mine, theirs } of outcomes) {
    const label = `${item.name} ${JSON.stringify(item.input.toString('latin1').slice(0, 120))}`;
    if (theirs.parsed === undefined) {
      if (mine.accepted) problems.push(`Node refused (${theirs.status}), we accepted: ${label}`);
      else tally.bothRefuse++;
      continue;
    }
    if (!mine.accepted) {
      tally.weRefuseMore++;
      stricter.push(`${item.name}: ${mine.why}`);
      if (item.valid) problems.push(`a valid request refused (${mine.why}): ${label}`);
      continue;
    }
    tally.agreeAccept++;
    const { body, ...rest } = mine.parsed;
    const { body: nodeBody, ...nodeRest } = theirs.parsed;
    try {
      assert.deepEqual(rest, nodeRest);
      if (body !== undefined && nodeBody !== undefined) assert.deepEqual(body, nodeBody);
    } catch (error) {
      problems.push(`read differently: ${label}\n${(error as Error).message}`);
    }
  }
  console.log(
    `h1 differential: ${cases.length} inputs; both accept and agree ${tally.agreeAccept}; ` +
      `both refuse ${tally.bothRefuse}; we refuse, Node accepts ${tally.weRefuseMore}` +
      (stricter.length > 0 ? ` (${stricter.join('; ')})` : ''),
  );
  assert.deepEqual(problems, []);
  assert.ok(tally.agreeAccept >= HANDWRITTEN.filter((item) => item.valid).length);
});

// Responses: an upstream's bytes read by Node's HTTP client (`http.request`, defaults) and by us.

interface ResponseCase extends Case {
  readonly method: string;
}
const reply200 = (fields: string, body = ''): Buffer => at(`HTTP/1.1 200 OK\r\n${fields}\r\n${body}`);
const validResponse = (name: string, input: Buffer, method = 'GET'): ResponseCase => ({
  name,
  input,
  method,
  valid: true,
});
const probeResponse = (name: string, input: Buffer, method = 'GET'): ResponseCase => ({
  name,
  input,
  method,
});

const HANDWRITTEN_RESPONSES: readonly ResponseCase[] = [
  validResponse('Content-Length', reply200('Content-Length: 5\r\n', 'hello')),
  validResponse('chunked', reply200('Transfer-Encoding: chunked\r\n', '3;a=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n')),
  validResponse(
    'gzip then chunked',
    reply200('Transfer-Encoding: gzip, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'),
  ),
  validResponse('until close', reply200('', 'all of this')),
  validResponse('coding without chunked: until close', reply200('Transfer-Encoding: gzip\r\n', 'raw bytes')),
  validResponse('204', at('HTTP/1.1 204 No Content\r\n\r\n')),
  validResponse('304 with Content-Length', at('HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n')),
  validResponse('HEAD', reply200('Content-Length: 500\r\n'), 'HEAD'),
  validResponse(
    '100 then 200',
    at('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  ),
  validResponse(
    '103 then 200',
    at('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
  ),
  validResponse('HTTP/1.0', at('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok')),
  validResponse('no reason phrase', at('HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok')),
  validResponse('empty reason phrase', at('HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok')),
  probeResponse('CL and TE', reply200('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')),
  probeResponse('two CLs', reply200('Content-Length: 2\r\nContent-Length: 2\r\n', 'ok')),
  probeResponse('CL list', reply200('Content-Length: 2, 2\r\n', 'ok')),
  probeResponse('CL +2', reply200('Content-Length: +2\r\n', 'ok')),
  probeResponse('CL then a tab', reply200('Content-Length: 2\t\r\n', 'ok')),
  probeResponse('chunked twice', reply200('Transfer-Encoding: chunked, chunked\r\n', '0\r\n\r\n')),
  probeResponse('chunked not last', reply200('Transfer-Encoding: chunked, gzip\r\n', '0\r\n\r\n')),
  probeResponse('TE in HTTP/1.0', at('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')),
  probeResponse('bare LF', at('HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok')),
  probeResponse('obs-fold', reply200('X: a\r\n b\r\nContent-Length: 2\r\n', 'ok')),
  probeResponse('NUL in a value', reply200('X: a\x00\r\nContent-Length: 2\r\n', 'ok')),
  probeResponse('space before colon', reply200('Content-Length : 2\r\n', 'ok')),
  probeResponse('status 99', at('HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n')),
  probeResponse('status 600', at('HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n')),
  probeResponse('four-digit status', at('HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n')),
  probeResponse('HTTP/2.0', at('HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n')),
  probeResponse('leading empty line', at('\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')),
  probeResponse('bad chunk size', reply200('Transfer-Encoding: chunked\r\n', 'x\r\nabc\r\n0\r\n\r\n')),
  probeResponse(
    'chunk size overflow',
    reply200('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\nabc\r\n'),
  ),
  probeResponse('missing final CRLF', reply200('Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n')),
  probeResponse('body cut short', reply200('Content-Length: 10\r\n', 'short')),
];

const GENERATED_RESPONSES: readonly ResponseCase[] = fc
  .sample(mutatedResponseArbitrary, { numRuns: 200, seed: 9110 })
  .map((input, i) => probeResponse(`response mutation ${i}`, input));

interface ParsedResponse {
  readonly status: number;
  readonly headers: readonly string[];
  readonly body: Buffer;
}
type ResponseVerdict =
  | { readonly accepted: true; readonly parsed: ParsedResponse; readonly length: number }
  | { readonly accepted: false; readonly why: string };

/** What we make of `input` as the answer to a `method` request, the connection ending after it. */
function oursResponse(input: Buffer, method: string): ResponseVerdict {
  let start = 0;
  for (;;) {
    const head = parseResponseHead(input, start, method);
    if (head.kind !== 'head')
      return { accepted: false, why: head.kind === 'error' ? head.code : 'incomplete' };
    if (head.interim) {
      start = head.end;
      continue;
    }
    const tracker = new BodyTracker(head.body, undefined, 'response');
    let progress = tracker.feed(input, head.end);
    if ('error' in progress) return { accepted: false, why: progress.error.code };
    const length = head.end + progress.consumed;
    if (!progress.done) progress = tracker.finish();
    if ('error' in progress) return { accepted: false, why: progress.error.code };
    const raw = input.subarray(head.end, length);
    const body = head.body.type === 'chunked' ? dechunk(raw) : raw;
    return { accepted: true, parsed: { status: head.status, headers: head.headers, body }, length };
  }
}

let upstream: net.Server;
let upstreamPort = 0;
/** What the upstream answers to the request for `/<index>`. */
const answers: Buffer[] = [];

before(async () => {
  upstream = net.createServer((socket) => {
    let request = '';
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      request += chunk.toString('latin1');
      if (!request.includes('\r\n\r\n')) return;
      const index = Number(/^\w+ \/(\d+) /.exec(request)?.[1]);
      socket.end(answers[index] ?? Buffer.alloc(0));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

/** Node's client verdict on the answer at `index`: the final response read whole, or a refusal. */
function nodeResponse(index: number, method: string): Promise<ParsedResponse | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (value: ParsedResponse | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(value);
    };
    const request = http.request({
      host: '127.0.0.1',
      port: upstreamPort,
      method,
      path: `/${index}`,
      agent: false,
    });
    const timer = setTimeout(() => {
      request.destroy();
      settle(undefined);
    }, 5_000);
    request.on('error', () => settle(undefined));
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', () => settle(undefined));
      response.on('close', () => {
        if (!response.complete) return settle(undefined);
        const headers = response.rawHeaders.map((value, i) => (i % 2 === 0 ? value.toLowerCase() : value));
        settle({ status: response.statusCode!, headers, body: Buffer.concat(chunks) });
      });
    });
    request.end();
  });
}

test("we refuse every response Node's client refuses, and read what both accept the same way", async () => {
  const cases = [...HANDWRITTEN_RESPONSES, ...GENERATED_RESPONSES];
  const outcomes = await pooled(
    cases.map((item, index) => ({ item, index })),
    8,
    async ({ item, index }) => {
      const mine = oursResponse(item.input, item.method);
      // As for requests, Node reads only the message we see; bytes after it are not its business.
      answers[index] = mine.accepted ? item.input.subarray(0, mine.length) : item.input;
      return { item, mine, theirs: await nodeResponse(index, item.method) };
    },
  );
  const tally = { agreeAccept: 0, bothRefuse: 0, weRefuseMore: 0 };
  const stricter: string[] = [];
  const problems: string[] = [];
  for (const { item, mine, theirs } of outcomes) {
    const label = `${item.name} ${JSON.stringify(item.input.toString('latin1').slice(0, 120))}`;
    if (theirs === undefined) {
      if (mine.accepted) problems.push(`Node refused, we accepted: ${label}`);
      else tally.bothRefuse++;
    } else if (!mine.accepted) {
      tally.weRefuseMore++;
      stricter.push(`${item.name}: ${mine.why}`);
      if (item.valid) problems.push(`a valid response refused (${mine.why}): ${label}`);
    } else {
      tally.agreeAccept++;
      try {
        assert.deepEqual(mine.parsed, theirs);
      } catch (error) {
        problems.push(`read differently: ${label}\n${(error as Error).message}`);
      }
    }
  }
  console.log(
    `h1 response differential: ${cases.length} inputs; both accept and agree ${tally.agreeAccept}; ` +
      `both refuse ${tally.bothRefuse}; we refuse, Node accepts ${tally.weRefuseMore}` +
      (stricter.length > 0 ? ` (${stricter.join('; ')})` : ''),
  );
  assert.deepEqual(problems, []);
});
