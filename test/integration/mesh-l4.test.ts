// The L4 mode (HBONE): an app's CONNECT (https_proxy, grpc_proxy) is carried whole from
// west's sidecar to a server's sidecar in east, through east's east-west gateway, as one
// HTTP/2 CONNECT stream over the pooled mTLS session, authorized by identity, with TCP
// metrics on both sides. When a path policy appears, the service port switches to L7
// without a failed request. Every part is a real process.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import type { LocalFederation } from '@causeway/cli/local-federation';
import { exportedService, pathPolicy, type SidecarProcess } from '@causeway/cli/local-federation';
import { grpcEchoClient, type EchoReply, type SampleApp } from '@causeway/cli/sample-apps';
import { eventually, repoRoot, withEnv } from '@causeway/testing';
import { startTwoClusters, type TwoClusters } from '../support/two-clusters.ts';

let clusters: TwoClusters | undefined;
let federation: LocalFederation;
let client: SidecarProcess;
let ledger: { app: SampleApp; sidecar: SidecarProcess };

const LEDGER = 'ledger.shop.svc.clusterset.local';

before(async () => {
  clusters = await startTwoClusters('mesh-l4');
  federation = clusters.federation;
  await federation.apply(
    'east',
    'shop.yaml',
    [
      exportedService('shop', 'ledger', 80, 'http'),
      exportedService('shop', 'till', 9000, 'grpc', 'grpc'),
    ].join('---\n'),
  );
  ledger = await federation.startSampleWorkload('east', 'shop', 'ledger', 'http');
  await federation.startSampleWorkload('east', 'shop', 'till', 'grpc');
  client = await federation.startSidecar('west', { namespace: 'shop', serviceAccount: 'web' });
});

after(async () => {
  await clusters?.dispose();
});

/** `causeway explain ledger.shop --json` against east's controller: the ledger's port modes. */
async function explainModes(): Promise<Array<{ port: number; mode: string; reasons: string[] }>> {
  const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
  const east = federation.clusters.get('east')!.controller.adminUrl;
  const { stdout } = await promisify(execFile)(process.execPath, [
    cli,
    'explain',
    'ledger.shop',
    '--controller',
    east,
    '--json',
  ]);
  return (JSON.parse(stdout) as { dataPlaneModes: Array<{ port: number; mode: string; reasons: string[] }> })
    .dataPlaneModes;
}

/** `CONNECT authority` to the client's sidecar; resolves with the socket once it answered 200. */
function tunnel(authority: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: client.outboundPort });
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) {
        socket.on('data', (more: Buffer) => (head += more.toString('latin1')));
        socket.once('close', () => reject(new Error(`CONNECT answered ${head}`)));
        return;
      }
      // Anything after the head is the tunnel's first bytes.
      if (head.length > end + 4) socket.unshift(Buffer.from(head.slice(end + 4), 'latin1'));
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('CONNECT timed out')));
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

/** A GET inside a CONNECT tunnel to the ledger. */
async function getThroughTunnel(requestPath: string): Promise<{ status: number; reply?: EchoReply }> {
  const socket = await tunnel(`${LEDGER}:80`);
  return await new Promise((resolve, reject) => {
    const request = http.get(
      { createConnection: () => socket, path: requestPath, headers: { host: LEDGER, connection: 'close' } },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          let reply: EchoReply | undefined;
          try {
            reply = JSON.parse(body) as EchoReply;
          } catch {
            reply = undefined;
          }
          resolve({ status: response.statusCode!, ...(reply ? { reply } : {}) });
        });
      },
    );
    request.on('error', reject);
  });
}

async function metric(sidecar: SidecarProcess, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => pattern.test(line))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

test('HTTP inside a CONNECT crosses clusters as an L4 tunnel, counted as TCP on both sides', async () => {
  const { status, reply } = await eventually(async () => {
    const result = await getThroughTunnel('/hello');
    assert.equal(result.status, 200);
    return result;
  }, 30_000);
  assert.equal(status, 200);
  assert.equal(reply?.instance, 'ledger-east');
  // L4: nothing inside the connection is read or changed, so no caller header is added.
  assert.equal(reply?.caller, undefined);
  assert.equal(reply?.path, '/hello');
  assert.deepEqual(await explainModes(), [
    { namespace: 'shop', name: 'ledger', port: 80, mode: 'L4', reasons: [] },
  ]);
  await eventually(async () => {
    const source =
      /^causeway_tcp_connections_closed_total\{reporter="source",.*destination_service="ledger\.shop\.svc\.clusterset\.local"/;
    assert.ok((await metric(client, source)) >= 1);
    const sent = /^causeway_tcp_sent_bytes_total\{reporter="source",.*destination_cluster="east".*ledger/;
    assert.ok((await metric(client, sent)) > 40);
    const destination =
      /^causeway_tcp_connections_opened_total\{reporter="destination",source_cluster="west",source_workload="web",destination_cluster="east",destination_service="ledger/;
    assert.ok((await metric(ledger.sidecar, destination)) >= 1);
  });
});

test('gRPC with grpc_proxy set to the sidecar: unary calls and a bidirectional stream through L4', async () => {
  // grpc-js reads the proxy when the channel is made: the target is the service's own name.
  const echo = withEnv({ grpc_proxy: `http://127.0.0.1:${client.outboundPort}` }, () =>
    grpcEchoClient(0, 'till.shop.svc.clusterset.local:9000', 'till.shop.svc.clusterset.local:9000'),
  );
  try {
    const reply = await eventually(() => echo.say('through a tunnel'), 30_000);
    assert.equal(reply.message, 'through a tunnel');
    assert.equal(reply.instance, 'till-east');
    const chat = echo.chat();
    for (const message of ['one', 'two', 'three']) assert.equal((await chat.send(message)).message, message);
    chat.end();
  } finally {
    echo.close();
  }
  const opened =
    /^causeway_tcp_connections_opened_total\{reporter="source",.*destination_service="till\.shop/;
  assert.ok((await metric(client, opened)) >= 1);
});

test('a WebSocket echo crosses clusters inside a CONNECT: the upgrade and every message pass', async () => {
  const socket = await eventually(() => tunnel(`${LEDGER}:80`), 30_000);
  const ws = new WebSocket(`ws://${LEDGER}/chat`, { createConnection: () => socket });
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(String(data)));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  for (const text of ['hello', 'across', 'clusters']) {
    const count = messages.length;
    ws.send(text);
    await eventually(async () => assert.equal(messages.length, count + 1));
    assert.equal(messages.at(-1), `ledger-east: ${text}`);
  }
  ws.close();
  await new Promise((resolve) => ws.once('close', resolve));
});

test('plain HTTP/1.1 in L4: pipelined requests answered in order, a chunked body, a WebSocket upgrade, bad framing refused', async () => {
  const host = `Host: ${LEDGER}\r\n`;
  // Two requests in one write, then a chunked POST: three answers, in order, one connection.
  const replies = await rawExchange(
    `GET /one HTTP/1.1\r\n${host}\r\nGET /two HTTP/1.1\r\n${host}\r\n` +
      `POST /three HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
  );
  const paths = [...replies.matchAll(/"path":"([^"]+)"/g)].map((match) => match[1]);
  assert.deepEqual(paths, ['/one', '/two', '/three']);
  assert.equal(replies.match(/HTTP\/1\.1 200 /g)?.length, 3);
  // Empty bodies both ways keep the connection: an answer of `Content-Length: 0`, a POST
  // with `Content-Length: 0`, then a last request.
  const empties = await rawExchange(
    `GET /empty HTTP/1.1\r\n${host}\r\nPOST /posted HTTP/1.1\r\n${host}Content-Length: 0\r\n\r\n` +
      `GET /last HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
  );
  assert.equal(empties.match(/HTTP\/1\.1 200 /g)?.length, 3, empties);
  assert.deepEqual(
    [...empties.matchAll(/"path":"([^"]+)"/g)].map((match) => match[1]),
    ['/posted', '/last'],
  );
  // Smuggling shapes never reach the tunnel.
  const smuggled = await rawExchange(
    `POST /x HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  );
  assert.match(smuggled, /^HTTP\/1\.1 400 /);
  // A WebSocket through the plain HTTP port (no CONNECT): the 101 turns it into a tunnel.
  assert.equal(await plainWebSocketEcho('plain'), 'ledger-east: plain');
});

/** A WebSocket to the ledger through the plain outbound port (no CONNECT): one message and its echo. */
async function plainWebSocketEcho(text: string): Promise<string> {
  const ws = new WebSocket(`ws://${LEDGER}/chat`, {
    createConnection: () => net.connect({ host: '127.0.0.1', port: client.outboundPort }),
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send(text));
      ws.once('message', (data) => resolve(String(data)));
      ws.once('error', reject);
    });
  } finally {
    ws.close();
  }
}

/** Raw bytes to a sidecar's outbound port (the client's by default); resolves with everything answered until it closes. */
function rawExchange(bytes: string, port = client.outboundPort): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.write(bytes);
  });
}

test('an h2c connection whose later stream names another service is refused with 421', async () => {
  const session = http2.connect(`http://127.0.0.1:${client.outboundPort}`);
  try {
    const call = (authority: string) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': '/hello', ':authority': authority });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
    assert.equal(
      await eventually(() =>
        call(LEDGER).then((s) => (s === 200 ? s : Promise.reject(new Error(String(s))))),
      ),
      200,
    );
    assert.equal(await call('till.shop.svc.clusterset.local:9000'), 421);
  } finally {
    session.close();
  }
});

test('a path policy switches the ledger to L7 without a failed request, and applies inside CONNECT too', async () => {
  // Plain HTTP/1.1 on kept-alive connections (each request borrows a pooled tunnel): when
  // the server side cuts its L4 tunnels, a request in flight is sent again, per request.
  let stop = false;
  const statuses: number[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const plainGet = () =>
    new Promise<number>((resolve) => {
      const request = http.get(
        { host: '127.0.0.1', port: client.outboundPort, path: '/books', agent, headers: { host: LEDGER } },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        },
      );
      request.on('error', () => resolve(0));
    });
  const loop = (async () => {
    while (!stop) statuses.push(...(await Promise.all([plainGet(), plainGet()])));
  })();
  // (A failed wait stops the loop too: left running, it would keep the test file alive.)
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await federation.apply(
      'east',
      'deny.yaml',
      pathPolicy('shop', 'no-admin', 'ledger', 'DENY', ['/admin', '/admin/*']),
    );
    await eventually(async () => assert.equal((await getThroughTunnel('/admin')).status, 403), 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  } finally {
    stop = true;
    await loop;
  }
  agent.destroy();
  assert.ok(statuses.length > 10, `only ${statuses.length} requests made`);
  const [mode] = await explainModes();
  assert.equal(mode?.mode, 'L7');
  assert.match(mode!.reasons.join(), /AuthorizationPolicy shop\/no-admin matches paths, methods or headers/);
  assert.deepEqual(
    statuses.filter((status) => status !== 200),
    [],
    'every request while the mode changed succeeded',
  );
});

test('L7 over framed tunnels: each request authorized on its own, a refused body never sent, the caller not spoofable, upgrades carried', async () => {
  // The ledger is L7 now (the DENY above). Plain HTTP/1.1 still rides tunnels: the server's
  // sidecar frames each request in them and authorizes it.
  // The server's access log marks the requests it framed itself (L7 in a tunnel).
  const framed = () =>
    ledger.sidecar.logs.filter((entry) => entry.mode === 'L7' && entry.reporter === 'destination').length;
  const framedBefore = framed();
  const host = `Host: ${LEDGER}\r\n`;
  // Pipelined, a refused one between two allowed ones: answered in order on one connection;
  // dot segments and escapes are resolved before the rule is applied.
  const mixed = await rawExchange(
    `GET /a HTTP/1.1\r\n${host}\r\nGET /admin HTTP/1.1\r\n${host}\r\nGET /books/../admin HTTP/1.1\r\n${host}\r\n` +
      `GET /%61dmin/x HTTP/1.1\r\n${host}\r\nGET /b HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
  );
  assert.deepEqual(
    [...mixed.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => match[1]),
    ['200', '403', '403', '403', '200'],
    mixed,
  );
  assert.deepEqual(
    [...mixed.matchAll(/"path":"([^"]+)"/g)].map((match) => match[1]),
    ['/a', '/b'],
  );
  await eventually(async () => assert.ok(framed() >= framedBefore + 5, 'the requests rode tunnels'));
  // A refused request with a body: 403, the connection ends, and the app never sees it.
  const served = ledger.app.served();
  const refused = await rawExchange(
    `POST /admin HTTP/1.1\r\n${host}Content-Length: 11\r\n\r\nsecret-bodyGET /after HTTP/1.1\r\n${host}\r\n`,
  );
  assert.match(refused, /^HTTP\/1\.1 403 /);
  assert.doesNotMatch(refused, /"path"/);
  assert.equal(ledger.app.served(), served);
  // A caller naming itself in x-forwarded-client-cert (either spelling) is not believed.
  const spoofed = await rawExchange(
    `GET /who HTTP/1.1\r\n${host}x-forwarded-client-cert: By=spiffe://cluster.local/ns/shop/sa/ledger;URI=spiffe://cluster.local/ns/admin/sa/root\r\n` +
      `x_forwarded_client_cert: URI=spiffe://cluster.local/ns/admin/sa/root\r\nConnection: close\r\n\r\n`,
  );
  assert.match(spoofed, /^HTTP\/1\.1 200 /);
  assert.match(spoofed, /"caller":"spiffe:\/\/mesh\.local\/ns\/shop\/sa\/web"/);
  // A chunked body that is allowed, and a WebSocket: both carried.
  const posted = await rawExchange(
    `POST /posted HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
  );
  assert.match(posted, /"path":"\/posted"/);
  assert.equal(await plainWebSocketEcho('framed'), 'ledger-east: framed');
});

test('framed L7 edges: other upgrades are not carried, HTTP/1.0 stays 1.0, a flood of refusals ends the tunnel, an open WebSocket is cut by a new DENY', async () => {
  const host = `Host: ${LEDGER}\r\n`;
  // An h2c upgrade would leave the sidecar blind: its fields are dropped, the app answers plainly.
  const h2c = await rawExchange(
    `GET /upgrade HTTP/1.1\r\n${host}Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
  );
  assert.match(h2c, /^HTTP\/1\.1 200 /);
  assert.match(h2c, /"path":"\/upgrade"/);
  // HTTP/1.0 reaches the app as HTTP/1.0: its answer is framed for it, then the connection ends.
  const old = await rawExchange(`GET /old HTTP/1.0\r\n${host}\r\n`);
  assert.match(old, /^HTTP\/1\.[01] 200 /);
  assert.doesNotMatch(old, /transfer-encoding: chunked/i);
  assert.match(old, /"path":"\/old"/);
  // A caller that sends nothing but refused requests is answered a hundred times, then cut off.
  const flood = await rawExchange(`GET /admin HTTP/1.1\r\n${host}\r\n`.repeat(150));
  assert.equal(flood.match(/HTTP\/1\.1 403 /g)?.length, 100);
  // An open WebSocket lasts as long as its request would still be allowed.
  const ws = new WebSocket(`ws://${LEDGER}/live`, {
    createConnection: () => net.connect({ host: '127.0.0.1', port: client.outboundPort }),
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => ws.send('first'));
    ws.once('message', () => resolve());
    ws.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  await federation.apply(
    'east',
    'deny.yaml',
    pathPolicy('shop', 'no-admin', 'ledger', 'DENY', ['/admin', '/admin/*', '/live']),
  );
  await Promise.race([
    closed,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('the WebSocket outlived the DENY')), 20_000),
    ),
  ]);
  const refused = await rawExchange(`GET /live HTTP/1.1\r\n${host}Connection: close\r\n\r\n`);
  assert.match(refused, /^HTTP\/1\.1 403 /);
});

test('slow and idle app connections: a head that never completes gets 408, an idle connection is closed', async () => {
  const slow = await federation.startSidecar('west', {
    namespace: 'shop',
    serviceAccount: 'slow',
    timeouts: { requestHead: '1s', idle: '1500ms' },
  });
  /** Opens a connection, runs `drive` on it; resolves with what came back and when it closed. */
  const session = (drive: (socket: net.Socket) => void) =>
    new Promise<{ data: string; closedAfterMs: number }>((resolve) => {
      const started = Date.now();
      const socket = net.connect({ host: '127.0.0.1', port: slow.outboundPort });
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => resolve({ data, closedAfterMs: Date.now() - started }));
      socket.setTimeout(10_000, () => socket.destroy());
      drive(socket);
    });
  // A byte every 200 ms: never idle, but the head is not done after 1 s.
  const dribbled = await session((socket) => {
    const head = `GET /books HTTP/1.1\r\nHost: ${LEDGER}\r\nx-pad: ${'a'.repeat(100)}`;
    let at = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || at >= head.length) return clearInterval(timer);
      socket.write(head[at++]!);
    }, 200);
    socket.once('close', () => clearInterval(timer));
  });
  assert.match(dribbled.data, /^HTTP\/1\.1 408 /);
  assert.ok(dribbled.closedAfterMs < 5_000, `closed after ${dribbled.closedAfterMs} ms`);
  // Silent from the start: closed without a word.
  const silent = await session(() => {});
  assert.equal(silent.data, '');
  assert.ok(
    silent.closedAfterMs >= 1_000 && silent.closedAfterMs < 5_000,
    `after ${silent.closedAfterMs} ms`,
  );
  // One exchange, then silence: the answer comes, then the connection is closed.
  const kept = await session((socket) => socket.write(`GET /books HTTP/1.1\r\nHost: ${LEDGER}\r\n\r\n`));
  assert.match(kept.data, /^HTTP\/1\.1 200 /);
  assert.match(kept.data, /"path":"\/books"/);
  assert.ok(kept.closedAfterMs < 5_000, `after ${kept.closedAfterMs} ms`);
});

test('an app that never accepts and a peer that never answers: the caller gets 503 within the timeouts, not a hang', async () => {
  // A listener whose one-slot queue is full: further connections are never accepted (SYNs dropped).
  const never = spawn(
    'python3',
    [
      '-c',
      "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: net.Socket[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      never.stdout!.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim())));
      never.once('error', reject);
    });
    for (let i = 0; i < 3; i++) fillers.push(net.connect({ host: '127.0.0.1', port }).on('error', () => {}));
    // It really does not accept: a new connection is still pending after half a second.
    const probe = net.connect({ host: '127.0.0.1', port }).on('error', () => {});
    const connected = await new Promise<boolean>((resolve) => {
      probe.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 500);
    });
    probe.destroy();
    assert.equal(connected, false, 'the listener accepted a connection past its queue');

    await federation.apply('east', 'stuck.yaml', exportedService('shop', 'stuck', 80, 'http'));
    const stuck = await federation.startSidecar('east', {
      namespace: 'shop',
      serviceAccount: 'stuck',
      workload: { name: 'stuck-0', labels: { app: 'stuck' } },
      inbound: [{ name: 'http', appPort: port }],
      timeouts: { appConnect: '1s' },
    });
    const caller = await federation.startSidecar('west', {
      namespace: 'shop',
      serviceAccount: 'patient',
      timeouts: { tunnelOpen: '3s' },
    });
    const timed = async (): Promise<{ status: number; body: string; ms: number }> => {
      const started = Date.now();
      const data = await rawExchange(
        `GET / HTTP/1.1\r\nHost: stuck.shop.svc.clusterset.local\r\nConnection: close\r\n\r\n`,
        caller.outboundPort,
      );
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      return { status, body: data.slice(data.indexOf('\r\n\r\n') + 4), ms: Date.now() - started };
    };
    // The app never takes the connection: 503 naming it, after about a second.
    const unreachable = await eventually(async () => {
      const answer = await timed();
      assert.equal(answer.status, 503, answer.body);
      assert.match(answer.body, /unreachable/);
      return answer;
    }, 30_000);
    assert.ok(unreachable.ms < 5_000, `answered after ${unreachable.ms} ms`);
    // The peer's sidecar hangs (stopped): its tunnel is never answered; 503 after tunnelOpen (3 s).
    process.kill(stuck.child.pid!, 'SIGSTOP');
    try {
      const hung = await timed();
      assert.equal(hung.status, 503, hung.body);
      assert.match(hung.body, /no answer to the tunnel within 3000 ms/);
      assert.ok(hung.ms >= 2_500 && hung.ms < 8_000, `answered after ${hung.ms} ms`);
    } finally {
      process.kill(stuck.child.pid!, 'SIGCONT');
    }
  } finally {
    for (const socket of fillers) socket.destroy();
    never.kill();
  }
});
