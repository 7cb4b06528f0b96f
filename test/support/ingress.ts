import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalFederation, SidecarProcess } from '@causeway/cli/local-federation';
import { callerOf } from '@causeway/cli/sample-apps';

/** What an echo backend answers: who it is and what it received. */
export interface Echo {
  readonly instance: string;
  /** Bytes of request body received. */
  readonly bytes: number;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly headers: Record<string, string>;
  readonly caller?: string;
}

/** An echo app behind a sidecar, as workload `instance` of Service `app` (namespace `shop`) in `cluster`. */
export async function startEcho(
  federation: LocalFederation,
  cluster: string,
  app: string,
  instance: string,
): Promise<{ server: http.Server; sidecar: SidecarProcess }> {
  const server = http.createServer(async (request, response) => {
    let bytes = 0;
    for await (const chunk of request) bytes += (chunk as Buffer).length;
    // `/stall…`: the answer comes after 3 s (a backend slower than a route allows).
    if (request.url?.startsWith('/stall')) await new Promise((resolve) => setTimeout(resolve, 3_000));
    if (response.destroyed) return;
    // `/fail-first…`: 503 to a request's first try (a proxy that retries numbers its tries).
    if (request.url?.startsWith('/fail-first') && Number(request.headers['x-causeway-attempt'] ?? 1) < 2) {
      response.writeHead(503, { 'content-type': 'text/plain' });
      return void response.end('the first try fails\n');
    }
    const caller = callerOf(request.headers['x-forwarded-client-cert']);
    const body = JSON.stringify({
      instance,
      bytes,
      method: request.method,
      path: request.url,
      host: request.headers.host,
      headers: request.headers,
      ...(caller ? { caller } : {}),
    });
    response.writeHead(200, { 'content-type': 'application/json', 'x-backend': instance });
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sidecar = await federation.startSidecar(cluster, {
    namespace: 'shop',
    serviceAccount: app,
    workload: { name: instance, labels: { app } },
    inbound: [{ name: 'http', appPort: (server.address() as AddressInfo).port }],
    accessLog: false,
  });
  return { server, sidecar };
}

/** Closes echo servers (their sidecars stop with the federation). */
export function closeServers(servers: readonly http.Server[]): void {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
}

export interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly echo?: Echo;
}

/** One request to `address` (`host:port`, an ingress gateway's listener). */
export function send(
  address: string,
  path: string,
  options: {
    method?: string;
    host?: string;
    headers?: Record<string, string>;
    agent?: http.Agent | false;
    body?: string;
  } = {},
): Promise<Answer> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host,
        port: Number(port),
        path,
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        headers: { host: options.host ?? 'shop.example.net', ...options.headers },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          let parsed: Echo | undefined;
          try {
            parsed =
              response.headers['content-type'] === 'application/json'
                ? (JSON.parse(body) as Echo)
                : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({
            status: response.statusCode!,
            headers: response.headers,
            body,
            ...(parsed ? { echo: parsed } : {}),
          });
        });
      },
    );
    request.setTimeout(10_000, () => request.destroy(new Error('timed out')));
    request.on('error', reject);
    request.end(options.body);
  });
}

/** The Gateway every ingress test routes through: `edge/public`, HTTP on 80 for all namespaces, plus HTTPS on 443. */
export const PUBLIC_GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: public, namespace: edge }
spec:
  gatewayClassName: causeway
  listeners:
    - { name: http, port: 80, protocol: HTTP, allowedRoutes: { namespaces: { from: All } } }
    - { name: tls, port: 443, protocol: HTTPS }
`;
