import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** What `/readyz` reports: ready, or not with the reason a person can act on. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/**
 * JSON pages under `/debug/<name>`: each gets the query string and answers a value, or
 * undefined for 404.
 */
export type DebugPages = Readonly<Record<string, (query: URLSearchParams) => unknown | Promise<unknown>>>;

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly registry: Registry;
  readonly readiness: () => Readiness;
  readonly debug?: DebugPages;
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(value, null, 2)}\n`);
}

/** The admin port of every Causeway process: `/livez`, `/readyz`, `/metrics`. */
export interface AdminServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request target\n');
      return;
    }
    const path = url.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const state = options.readiness();
      res
        .writeHead(state.ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(state.ready ? 'ok\n' : `not ready: ${state.reason}\n`);
    } else if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        (error: unknown) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(error)}\n`),
      );
    } else if (path.startsWith('/debug/') && options.debug && Object.hasOwn(options.debug, path.slice(7))) {
      const page = options.debug[path.slice(7)]!;
      Promise.resolve()
        .then(() => page(url.searchParams))
        .then(
          (value) =>
            value === undefined
              ? sendJson(res, 404, { error: `nothing found for ${url.search || path}` })
              : sendJson(res, 200, value),
          (error: unknown) => sendJson(res, 400, { error: (error as Error).message }),
        )
        .catch(() => res.destroy());
    } else {
      const pages = Object.keys(options.debug ?? {}).map((name) => `/debug/${name}`);
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(`not found: try ${['/livez', '/readyz', '/metrics', ...pages].join(', ')}\n`);
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
