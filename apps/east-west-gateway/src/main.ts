import os from 'node:os';
import { splitAddress } from '@causeway/config';
import { EastWestGateway, startProxyIdentity } from '@causeway/dataplane';
import type { ProxyConfig } from '@causeway/discovery';
import { runComponent } from '@causeway/runtime';
import { settingsSchema, type Settings } from './settings.ts';

await runComponent<Settings>({
  name: 'east-west-gateway',
  description:
    'Cross-cluster entry of a cluster: reads the SNI of mTLS connections from other clusters and passes them through, unterminated, to local workloads of exported services.',
  status:
    'routes SNI outbound_.<port>_._.<svc>.<ns>.svc.clusterset.local to ready local endpoints of exported services (config from the federation controller), refuses everything else, and answers probes at probe.<cluster>.causeway.internal (mTLS).',
  settingsSchema,
  settingsHelp:
    'cluster, trustDomain, controller, trustBundle, tokenFile, stateDir, address, maxConnections, maxConnectionsPerSource, idleTimeoutSeconds, namespace, serviceAccount',
  defaultAdminAddress: '127.0.0.1:15040',
  start: async ({ settings, logger, registry }) => {
    const log = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) =>
      logger[level](fields ?? {}, message);
    let config: ProxyConfig | undefined;
    // Set once the gateway exists; a config can come earlier.
    const running: { gateway?: EastWestGateway } = {};
    const identity = await startProxyIdentity({
      settings,
      kind: 'east-west-gateway',
      proxy: `east-west-gateway~${settings.namespace}~${os.hostname()}-${process.pid}`,
      namespace: settings.namespace,
      serviceAccount: settings.serviceAccount,
      instance: `${os.hostname()}-${process.pid}`,
      onConfig: (message) => {
        config = message.config;
        running.gateway?.configChanged(config);
        log('info', 'config applied', { version: message.version, services: config.services.length });
      },
      log,
    });
    await identity.connect();
    const gateway = new EastWestGateway({
      cluster: settings.cluster,
      config: () => config,
      maxConnections: settings.maxConnections,
      maxConnectionsPerSource: settings.maxConnectionsPerSource,
      idleTimeoutMs: settings.idleTimeoutSeconds * 1000,
      probeContext: () => identity.secureContext(),
      registry,
      log,
    });
    running.gateway = gateway;
    const { host, port } = splitAddress(settings.address);
    const bound = await gateway.listen(host, port);
    logger.info({ address: `${bound.address}:${bound.port}` }, 'east-west gateway listening');
    return {
      readiness: () =>
        config ? { ready: true } : { ready: false, reason: 'no config from the controller yet' },
      stop: async () => {
        await gateway.close();
        await identity.stop();
      },
    };
  },
});
