import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import {
  ClientHelloReader,
  MAX_CLIENT_HELLO,
  parseClientHello,
  type ClientHelloResult,
} from './client-hello.ts';

/** The first bytes a real Node TLS client sends (its ClientHello), captured on a plain socket. */
async function captureHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      let data = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
          resolve(data);
          socket.destroy();
        }
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  client.on('error', () => {});
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}

/** The same handshake message cut into records of at most `size` bytes. */
function refragment(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5);
  const records: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += size) {
    const part = body.subarray(offset, offset + size);
    const header = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    records.push(header, part);
  }
  return Buffer.concat(records);
}

test('the server name of a real ClientHello is read, lower-cased; every shorter prefix is incomplete', async () => {
  const hello = await captureHello({ servername: 'Outbound_.80_._.Cart.Shop.svc.clusterset.local' });
  assert.deepEqual(parseClientHello(hello), {
    kind: 'hello',
    serverName: 'outbound_.80_._.cart.shop.svc.clusterset.local',
  });
  for (let length = 0; length < hello.length; length++)
    assert.deepEqual(parseClientHello(hello.subarray(0, length)), { kind: 'incomplete' }, `prefix ${length}`);
  // Bytes after the ClientHello (the client's next flight) do not matter.
  assert.equal(parseClientHello(Buffer.concat([hello, randomBytes(64)])).kind, 'hello');
});

test('a ClientHello split across several records is reassembled', async () => {
  const hello = await captureHello({ servername: 'till.shop.svc.clusterset.local' });
  for (const size of [1, 7, 100]) {
    const split = refragment(hello, size);
    assert.deepEqual(parseClientHello(split), {
      kind: 'hello',
      serverName: 'till.shop.svc.clusterset.local',
    });
    assert.deepEqual(parseClientHello(split.subarray(0, split.length - 1)), { kind: 'incomplete' });
  }
});

test('a ClientHello without SNI has no server name', async () => {
  // Node sends no SNI when the host is an IP address and no servername is given.
  assert.deepEqual(parseClientHello(await captureHello({})), { kind: 'hello', serverName: undefined });
});

test('plain HTTP, bad lengths and bad names are malformed; a huge handshake is oversized', async () => {
  const hello = await captureHello({ servername: 'cart.shop.svc.clusterset.local' });
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).kind, 'malformed');
  const badRecordLength = Buffer.from(hello);
  badRecordLength.writeUInt16BE(0, 3);
  assert.equal(parseClientHello(badRecordLength).kind, 'malformed');
  const notHello = Buffer.from(hello);
  notHello[5] = 2; // ServerHello
  assert.equal(parseClientHello(notHello).kind, 'malformed');
  const shortHandshake = Buffer.from(hello);
  shortHandshake.writeUIntBE(hello.length - 9 - 40, 6, 3); // claims fewer bytes than the fields hold
  assert.equal(parseClientHello(shortHandshake).kind, 'malformed');
  const huge = Buffer.from(hello);
  huge.writeUIntBE(MAX_CLIENT_HELLO + 1, 6, 3);
  assert.deepEqual(parseClientHello(huge), { kind: 'oversized' });
  const at = hello.indexOf('cart.shop');
  const badName = Buffer.from(hello);
  badName[at] = 0x2f; // '/'
  assert.deepEqual(parseClientHello(badName), {
    kind: 'malformed',
    reason: 'the server name is not a host name',
  });
});

test('random and mutated input never throws', async () => {
  const hello = await captureHello({ servername: 'cart.shop.svc.clusterset.local' });
  for (let i = 0; i < 2_000; i++) {
    const mutated = Buffer.from(hello);
    for (let j = 0; j < 1 + (i % 5); j++)
      mutated[Math.floor(Math.random() * mutated.length)] = Math.floor(Math.random() * 256);
    assert.doesNotThrow(() => parseClientHello(mutated));
    assert.doesNotThrow(() => parseClientHello(randomBytes(i % 300)));
  }
});

test('a ClientHello read one byte at a time is read once, in linear time', async () => {
  const hello = refragment(await captureHello({ servername: 'till.shop.svc.clusterset.local' }), 1);
  const reader = new ClientHelloReader();
  let result: ClientHelloResult = { kind: 'incomplete' };
  for (let i = 0; i < hello.length; i++) {
    result = reader.push(hello.subarray(i, i + 1));
    if (i < hello.length - 1) assert.equal(result.kind, 'incomplete', `decided after ${i + 1} bytes`);
  }
  assert.deepEqual(result, { kind: 'hello', serverName: 'till.shop.svc.clusterset.local' });
  assert.deepEqual(reader.bytes(), hello, 'the bytes to replay are the bytes received');
  // Tiny records past twice the largest ClientHello: refused, however they are cut.
  // A handshake header that announces a 16,128-byte ClientHello, then its body one byte per record.
  const flood = new ClientHelloReader();
  let verdict = flood.push(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x3f, 0x00]));
  const record = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, 0x00]);
  let pushed = 0;
  for (; verdict.kind === 'incomplete' && pushed < 20_000; pushed++) verdict = flood.push(record);
  assert.equal(verdict.kind, 'oversized');
  assert.ok(pushed * record.length <= 2 * MAX_CLIENT_HELLO, `refused only after ${pushed} records`);
});
