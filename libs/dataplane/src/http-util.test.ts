import assert from 'node:assert/strict';
import { test } from 'node:test';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import { parseRequestHead } from '@causeway/http';
import { fieldsOf, hasNoBody, ReplayableBody } from './http-util.ts';

/** What a sink has received once `length` bytes are there (data flows on later ticks). */
async function received(sink: PassThrough, length: number): Promise<string> {
  for (let tick = 0; tick < 100 && sink.readableLength < length; tick++) await setImmediate();
  // Chunk by chunk: newer Node releases hand out one buffered chunk per read().
  let text = '';
  for (let chunk = sink.read() as Buffer | null; chunk !== null; chunk = sink.read() as Buffer | null)
    text += String(chunk);
  return text;
}

test('a request body streams to its sink, is sent again from its start, and is drained when nobody reads it', async () => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 8);
  const first = new PassThrough();
  body.sendTo(first);
  source.write('abc');
  assert.equal(await received(first, 3), 'abc');
  // The first attempt fails: a second sink gets what was kept, then the rest.
  first.destroy();
  const second = new PassThrough();
  body.sendTo(second);
  source.write('de');
  assert.equal(await received(second, 5), 'abcde');
  assert.equal(body.replayable, true);
  source.write('fghij'); // past 8 bytes: no longer kept
  await setImmediate();
  assert.equal(body.replayable, false);
  assert.throws(() => body.sendTo(new PassThrough()), /too long to send again/);

  // The sink goes away mid-body (the peer answered early and reset): the source keeps
  // flowing instead of waiting for a 'drain' that never comes.
  second.destroy();
  for (let i = 0; i < 100; i++) source.write(Buffer.alloc(1024));
  await setImmediate();
  assert.equal(source.isPaused(), false, 'the source waits on a sink that is gone');
  assert.equal(second.listenerCount('drain'), 0);
  body.discard();
  source.end('last');
  await once(source, 'end');
});

test('a body with no length and no chunking is empty; HTTP/2 says so on its headers', () => {
  assert.equal(hasNoBody({ headers: {} }), true);
  assert.equal(hasNoBody({ headers: { 'content-length': '0' } }), true);
  assert.equal(hasNoBody({ headers: { 'content-length': '3' } }), false);
  assert.equal(hasNoBody({ headers: { 'transfer-encoding': 'chunked' } }), false);
  assert.equal(hasNoBody({ headers: {}, stream: { endAfterHeaders: false } }), false);
  assert.equal(hasNoBody({ headers: {}, stream: { endAfterHeaders: true } }), true);
});

test('flat fields read as Node reads them: repeats joined, cookies with ";", single fields first', async () => {
  const flat = [
    'x-role',
    'guest',
    'x-role',
    'admin',
    'cookie',
    'a=1',
    'cookie',
    'b=2',
    'authorization',
    'first',
    'authorization',
    'second',
  ];
  assert.deepEqual(fieldsOf(flat), { 'x-role': 'guest, admin', cookie: 'a=1; b=2', authorization: 'first' });
  // The same as Node's own parser makes of the same head.
  const raw =
    'GET / HTTP/1.1\r\nHost: a\r\nX-Role: guest\r\nX-Role: admin\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n';
  const parsed = parseRequestHead(Buffer.from(raw), 0);
  assert.equal(parsed.kind, 'head');
  const server = http.createServer();
  const seen = new Promise<Record<string, unknown>>((resolve) =>
    server.on('request', (request, response) => {
      resolve({ ...request.headers });
      response.end();
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as { port: number }).port, '127.0.0.1', () =>
    socket.write(raw),
  );
  socket.on('data', () => socket.destroy());
  const fromNode = await seen;
  server.close();
  assert.deepEqual(fieldsOf((parsed as { headers: string[] }).headers), fromNode);
});
