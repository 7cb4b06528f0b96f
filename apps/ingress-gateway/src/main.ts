import os from 'node:os';
import { splitAddress } from '@causeway/config';
import { startProxyIdentity } from '@causeway/dataplane';
import type { ProxyConfig } from '@causeway/discovery';
import { IngressGateway, RateLimiter } from '@causeway/ingress';
import { runComponent } from '@causeway/runtime';
import { settingsSchema, type Settings } from './settings.ts';

await runComponent<Settings>({
  name: 'ingress-gateway',
  description:
    'North-south entry of a cluster: Gateway API HTTPRoute/GRPCRoute routing onto the mesh (mTLS), to this cluster and to any cluster of the clusterset.',
  status:
    'HTTP (HTTP/1.1 and h2c) and HTTPS (certificates by SNI, HTTP/2 by ALPN) listeners of Gateways of class causeway; HTTPRoute and GRPCRoute matching with Gateway API precedence; header, redirect, rewrite and mirror filters; WebSocket; weighted Service and ServiceImport backends through the mesh with failover. RateLimitPolicy global through Redis (GCRA), local when Redis is out. TLS and TCP listeners are not served.',
  settingsSchema,
  settingsHelp:
    'cluster, trustDomain, controller, trustBundle, tokenFile, stateDir, namespace, serviceAccount, gateways[], listeners.{<port>: host:port}, trustedProxies[], accessLog, pathNormalization.{…}, timeouts.{requestHead,request,idle}, redis.{url,connectTimeout,commandTimeout}, maxHeaderBytes',
  defaultAdminAddress: '127.0.0.1:15030',
  start: async ({ settings, logger, registry }) => {
    const log = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) =>
      logger[level](fields ?? {}, message);
    const instance = `${os.hostname()}-${process.pid}`;
    let config: ProxyConfig | undefined;
    // Set once the gateway exists; a config can come earlier.
    const running: { gateway?: IngressGateway } = {};
    const apply = async (next: ProxyConfig, version: number) => {
      await running.gateway?.configChanged(next);
      log('info', 'config applied', {
        version,
        gateways: next.gateways.length,
        routes: next.routes.length,
        listeners: running.gateway?.listeners(),
      });
    };
    const identity = await startProxyIdentity({
      settings,
      kind: 'ingress-gateway',
      proxy: `ingress-gateway~${settings.namespace}~${instance}`,
      namespace: settings.namespace,
      serviceAccount: settings.serviceAccount,
      instance,
      onConfig: (message) => {
        config = message.config;
        apply(message.config, message.version).catch((error: unknown) =>
          log('warn', 'config could not be applied', { err: String(error) }),
        );
      },
      log,
    });
    const access = logger.child({ log: 'access' });
    const rateLimiter = new RateLimiter({
      ...(settings.redis
        ? {
            redisUrl: settings.redis.url,
            connectTimeoutMs: settings.redis.connectTimeout,
            commandTimeoutMs: settings.redis.commandTimeout,
          }
        : {}),
      registry,
      log,
    });
    const gateway = new IngressGateway({
      rateLimiter,
      cluster: settings.cluster,
      namespace: settings.namespace,
      serviceAccount: settings.serviceAccount,
      credentials: () => identity.credentials(),
      config: () => config,
      pathNormalization: settings.pathNormalization,
      ...(settings.gateways ? { gateways: new Set(settings.gateways) } : {}),
      bind: (port) => {
        const address = settings.listeners[String(port)];
        return address ? splitAddress(address) : { host: '0.0.0.0', port };
      },
      trustedProxies: settings.trustedProxies,
      headerTimeoutMs: settings.timeouts.requestHead,
      requestTimeoutMs: settings.timeouts.request,
      idleTimeoutMs: settings.timeouts.idle,
      maxHeaderBytes: settings.maxHeaderBytes,
      registry,
      ...(settings.accessLog
        ? { accessLog: (entry: Record<string, unknown>) => access.info(entry, 'request') }
        : {}),
      log,
    });
    running.gateway = gateway;
    await identity.connect();
    if (config) await apply(config, 0);
    logger.info({ listeners: gateway.listeners() }, 'ingress gateway started');
    return {
      readiness: () => {
        if (!config) return { ready: false, reason: 'no config from the controller yet' };
        const failed = [...gateway.failures()].map(([port, reason]) => `listener port ${port}: ${reason}`);
        return failed.length ? { ready: false, reason: failed.join('; ') } : { ready: true };
      },
      stop: async () => {
        await gateway.close();
        await rateLimiter.close();
        await identity.stop();
      },
    };
  },
});
