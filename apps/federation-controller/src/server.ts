import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyPluginAsync } from 'fastify';
import { SIGNING_SERVER_OPTIONS } from '@causeway/identity';
import type { TrustController } from '@causeway/trust';

/** The controller's HTTPS server: the signing and trust routes, and any registered beside them. */
export interface ControllerServer {
  /** `https://host:port` (an IPv6 host in brackets). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** How often a restarted controller asks for its previous port before it takes another. */
const PREVIOUS_PORT_ATTEMPTS = 5;

/**
 * Starts the controller's one HTTPS server, under the controller's own identity (its
 * secure context follows each re-issue). The trust controller's signing routes are
 * registered on it as a fastify plugin, then `plugins` (the discovery API), each in its own
 * encapsulated context (its own error answers): with those, clients are asked for a
 * certificate, not required to send one, and each route checks the caller's SPIFFE ID.
 * Port 0 is any free port; `previousPort` (the one this controller had before a restart) is
 * tried first, so that proxies configured with it find it again.
 */
export async function startControllerServer(options: {
  readonly trust: TrustController;
  readonly plugins?: readonly FastifyPluginAsync[];
  readonly listen: { readonly host: string; readonly port: number; readonly previousPort?: number };
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}): Promise<ControllerServer> {
  const { trust } = options;
  const plugins = options.plugins ?? [];
  const tls = (): { key: string; cert: string } => trust.servingTls();
  const app = Fastify({
    https: plugins.length > 0 ? { ...tls(), requestCert: true, rejectUnauthorized: false } : tls(),
    ...SIGNING_SERVER_OPTIONS,
  });
  await app.register(trust.routes);
  for (const plugin of plugins) await app.register(plugin);
  trust.onIdentity(() => (app.server as Server).setSecureContext(tls()));
  const { host, port, previousPort } = options.listen;
  if (
    port === 0 &&
    previousPort &&
    Number.isInteger(previousPort) &&
    previousPort > 0 &&
    previousPort < 65_536
  ) {
    // The old port may be held for a moment (an outgoing connection's local port, say):
    // asked for again a few times before another is taken.
    for (let attempt = 1; ; attempt++) {
      try {
        await app.listen({ host, port: previousPort });
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
        if (attempt < PREVIOUS_PORT_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          continue;
        }
        options.log?.(
          'warn',
          'the previous signing port is taken; listening on a new one (proxies must be told)',
          {
            previousPort,
          },
        );
        await app.listen({ host, port: 0 });
        break;
      }
    }
  } else await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    port: address.port,
    close: () => app.close(),
  };
}
