import os from 'node:os';
import { durationSetting, listenAddress, splitAddress, z } from '@causeway/config';
import {
  pathNormalizationSetting,
  proxyIdentitySettings,
  Sidecar,
  startProxyIdentity,
} from '@causeway/dataplane';
import type { ProxyConfig, Workload } from '@causeway/discovery';
import { runComponent } from '@causeway/runtime';

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9, -)');
const port = z.number().int().min(0).max(65_535);

const settingsSchema = z
  .object({
    ...proxyIdentitySettings,
    /** The workload's identity: `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
    namespace: dnsLabel,
    serviceAccount: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a DNS subdomain'),
    /** File mode: the workload registered with the controller (Services select it by label). */
    workload: z
      .object({
        name: dnsLabel,
        labels: z.record(z.string(), z.string()).default({}),
        /** The IP address peers reach this sidecar's inbound listeners at. */
        address: z.union([z.ipv4(), z.ipv6()]),
        zone: z.string().optional(),
      })
      .strict()
      .optional(),
    /**
     * Kubernetes mode: the pod's IP (from the downward API, `status.podIP`), as its
     * EndpointSlices name it. The inbound listeners serve the Services whose endpoints are
     * this address and a listener's port. File mode takes `workload.address` instead.
     */
    podIp: z.union([z.ipv4(), z.ipv6()]).optional(),
    /** Where the app sends its outbound calls (HTTP/1.1 and HTTP/2 cleartext on one port). */
    outbound: listenAddress.default('127.0.0.1:15001'),
    /** The mTLS listeners peers call, each in front of one app port. */
    inbound: z
      .array(
        z
          .object({
            name: dnsLabel.optional(),
            port: port.default(0),
            appPort: port.refine((value) => value > 0, 'must be a port (1-65535)'),
            appProtocol: z.enum(['http', 'h2c']).default('http'),
          })
          .strict(),
      )
      .default([]),
    inboundHost: z.string().min(1).default('0.0.0.0'),
    /** Where the app listens. */
    appHost: z.string().min(1).default('127.0.0.1'),
    /** A JSON access log line per request, from both sides. */
    accessLog: z.boolean().default(true),
    /** Request path normalization before routing and authorization (the defaults refuse every ambiguous spelling). */
    pathNormalization: pathNormalizationSetting,
    /** How long the sidecar waits on an app or a peer. */
    timeouts: z
      .object({
        /** An app's request head must be complete this long after its first byte (else 408). */
        requestHead: durationSetting('60s'),
        /** An app connection with nothing in flight that sends nothing for this long is closed. */
        idle: durationSetting('65s'),
        /** The app has this long to accept a connection for a caller (else the caller goes elsewhere). */
        appConnect: durationSetting('10s'),
        /** A peer sidecar or gateway has this long to answer a tunnel (else the next endpoint is tried). */
        tunnelOpen: durationSetting('15s'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((settings) => !(settings.workload && settings.podIp), {
    message: 'set workload (file mode) or podIp (Kubernetes mode), not both',
    path: ['podIp'],
  });
type Settings = z.output<typeof settingsSchema>;

await runComponent<Settings>({
  name: 'sidecar',
  description:
    "Per-workload proxy: routes the app's outbound calls (local or through a remote east-west gateway) over mTLS, and terminates inbound mTLS with authorization.",
  status:
    'outbound HTTP/1.1 and h2c routed by authority and mesh routes (L7), and CONNECT carried whole as HBONE tunnels (L4), nearest endpoints first with failover to other clusters; inbound mTLS (TLS 1.3) with SVIDs checked at the handshake and AuthorizationPolicy; strict path normalization; config from the federation controller.',
  settingsSchema,
  settingsHelp:
    'cluster, trustDomain, controller, trustBundle, tokenFile, stateDir, namespace, serviceAccount, workload.{name,labels,address,zone}, podIp, outbound, inbound[].{name,port,appPort,appProtocol}, inboundHost, appHost, accessLog, pathNormalization.{escapedSlashes,backslash,semicolons,mergeSlashes,trailingDots,encodedWhitespace}, timeouts.{requestHead,idle,appConnect,tunnelOpen}',
  defaultAdminAddress: '127.0.0.1:15020',
  start: async ({ settings, logger, registry }) => {
    const log = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) =>
      logger[level](fields ?? {}, message);
    const instance = settings.workload?.name ?? `${os.hostname()}-${process.pid}`;
    let config: ProxyConfig | undefined;
    // Set once the listeners exist; the certificate and the first config can come earlier.
    const running: { sidecar?: Sidecar } = {};
    const identity = await startProxyIdentity({
      settings,
      kind: 'sidecar',
      proxy: `sidecar~${settings.namespace}~${instance}`,
      namespace: settings.namespace,
      serviceAccount: settings.serviceAccount,
      instance,
      onConfig: (message) => {
        // Swapped whole: requests in flight keep the config they started with.
        config = message.config;
        running.sidecar?.configChanged(config);
        log('info', 'config applied', { version: message.version, services: config.services.length });
      },
      onCredentials: (credentials) => running.sidecar?.renewed(credentials),
      log,
    });
    const access = logger.child({ log: 'access' });
    const sidecar = new Sidecar({
      cluster: settings.cluster,
      trustDomain: settings.trustDomain,
      namespace: settings.namespace,
      serviceAccount: settings.serviceAccount,
      credentials: () => identity.credentials(),
      config: () => config,
      appHost: settings.appHost,
      inbound: settings.inbound,
      inboundHost: settings.inboundHost,
      workloadAddress: settings.workload?.address ?? settings.podIp ?? '',
      outbound: splitAddress(settings.outbound),
      pathNormalization: settings.pathNormalization,
      timeouts: {
        requestHeadMs: settings.timeouts.requestHead,
        idleMs: settings.timeouts.idle,
        appConnectMs: settings.timeouts.appConnect,
        tunnelOpenMs: settings.timeouts.tunnelOpen,
      },
      registry,
      ...(settings.accessLog
        ? { accessLog: (entry: Record<string, unknown>) => access.info(entry, 'request') }
        : {}),
      log,
    });
    running.sidecar = sidecar;
    const ports = await sidecar.listen();
    const workload: Workload | undefined = settings.workload && {
      name: settings.workload.name,
      labels: settings.workload.labels,
      address: settings.workload.address,
      ports: settings.inbound.map((inbound, index) => ({
        ...(inbound.name ? { name: inbound.name } : {}),
        port: ports.inbound[index]!,
        appPort: inbound.appPort,
      })),
      ...(settings.workload.zone ? { zone: settings.workload.zone } : {}),
    };
    await identity.connect(workload);
    logger.info(
      { outbound: `${splitAddress(settings.outbound).host}:${ports.outbound}`, inbound: ports.inbound },
      'sidecar listening',
    );
    return {
      readiness: () =>
        config ? { ready: true } : { ready: false, reason: 'no config from the controller yet' },
      debug: {
        outliers: () => ({
          ejected: sidecar.ejectedEndpoints().map((e) => ({
            ...e,
            until: new Date(e.untilMs).toISOString(),
          })),
        }),
      },
      stop: async () => {
        await sidecar.close();
        await identity.stop();
      },
    };
  },
});
