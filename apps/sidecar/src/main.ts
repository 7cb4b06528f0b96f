import os from 'node:os';
import { splitAddress } from '@causeway/config';
import { Sidecar, startProxyIdentity } from '@causeway/dataplane';
import type { ProxyConfig, Workload } from '@causeway/discovery';
import { runComponent } from '@causeway/runtime';
import { settingsSchema, type Settings } from './settings.ts';

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
