import os from 'node:os';
import net from 'node:net';
import { durationSetting, listenAddress, splitAddress, z } from '@causeway/config';
import { pathNormalizationSetting, proxyIdentitySettings, startProxyIdentity } from '@causeway/dataplane';
import type { ProxyConfig } from '@causeway/discovery';
import { IngressGateway, RateLimiter } from '@causeway/ingress';
import { runComponent } from '@causeway/runtime';

const gatewayName = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
    'must be <namespace>/<name>',
  );
const trustedPeer = z.string().refine((value) => {
  const [address, bits, ...rest] = value.split('/');
  if (rest.length > 0 || !address || !net.isIP(address)) return false;
  if (bits === undefined) return true;
  const max = net.isIPv6(address) ? 128 : 32;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}, 'must be an IP address or a CIDR range (10.0.0.0/8)');

const settingsSchema = z
  .object({
    ...proxyIdentitySettings,
    /** The gateway's identity: `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
    namespace: z.string().min(1).default('causeway-system'),
    serviceAccount: z.string().min(1).default('ingress-gateway'),
    /** The Gateways served (`<namespace>/<name>`); none: every Gateway of class `causeway`. */
    gateways: z.array(gatewayName).optional(),
    /** Where each Gateway listener port is served here (`"80": "0.0.0.0:8080"`); others: all interfaces, the same port. */
    listeners: z.record(z.string().regex(/^\d{1,5}$/, 'must be a port number'), listenAddress).default({}),
    /** Peers whose X-Forwarded-* headers are believed (addresses or CIDR ranges). */
    trustedProxies: z.array(trustedPeer).default([]),
    accessLog: z.boolean().default(true),
    pathNormalization: pathNormalizationSetting,
    timeouts: z
      .object({
        /** A request head must be complete this long after the connection's first byte (else 408). */
        requestHead: durationSetting('10s'),
        /** A whole request, body included, must arrive within this long (else 408). */
        request: durationSetting('300s'),
        /** A kept-alive client connection with nothing in flight is closed after this long. */
        idle: durationSetting('65s'),
      })
      .strict()
      .prefault({}),
    /** Where RateLimitPolicies are counted for every replica; none: each replica counts alone. */
    redis: z
      .object({
        url: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be redis://host:port'),
        /** A connection attempt may take this long. */
        connectTimeout: durationSetting('500ms'),
        /** A decision waits this long for Redis before the local limiter decides. */
        commandTimeout: durationSetting('250ms'),
      })
      .strict()
      .optional(),
    /** Bytes of request head accepted (more: 431). */
    maxHeaderBytes: z.number().int().min(1_024).max(1_048_576).default(16_384),
  })
  .strict();
type Settings = z.output<typeof settingsSchema>;

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
