// The baseline a Node.js sidecar is judged against: the plainest mTLS proxy Node's own
// modules make, one side per process, like the Causeway and nginx pairs.
//   node bench/node-proxy.mjs front <port> <backPort> <cert> <key> <ca> <servername>
//   node bench/node-proxy.mjs back <port> <appPort> <cert> <key> <ca>
// front: HTTP/1.1 in, HTTPS (TLS 1.3, client certificate, kept-alive pool) out.
// back: HTTPS in (client certificate required), HTTP/1.1 (kept-alive pool) to the app.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [side, port, upstreamPort, certFile, keyFile, caFile, servername] = process.argv.slice(2);
const tlsFiles = { cert: readFileSync(certFile), key: readFileSync(keyFile), ca: readFileSync(caFile) };

function forward(client, agent, targetPort) {
  return (request, response) => {
    const upstream = client.request(
      {
        host: '127.0.0.1',
        port: Number(targetPort),
        method: request.method,
        path: request.url,
        headers: request.headers,
        agent,
      },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  };
}

const server =
  side === 'front'
    ? http.createServer(
        forward(
          https,
          new https.Agent({
            keepAlive: true,
            maxSockets: 64,
            servername,
            minVersion: 'TLSv1.3',
            ...tlsFiles,
          }),
          upstreamPort,
        ),
      )
    : https.createServer(
        { ...tlsFiles, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
        forward(http, new http.Agent({ keepAlive: true, maxSockets: 64 }), upstreamPort),
      );
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
