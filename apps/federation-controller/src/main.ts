import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { splitAddress } from '@causeway/config';
import { TokenReviewVerifier, type ProofMode } from '@causeway/identity';
import type { SignedTrustBundle } from '@causeway/pki';
import { CatalogBus } from '@causeway/catalog';
import { startCatalogController, type CatalogController } from '@causeway/k8s';
import { runComponent } from '@causeway/runtime';
import { NatsTrustStore, startTrustController } from '@causeway/trust';
import { settingsSchema, type Settings } from './settings.ts';

await runComponent<Settings>({
  name: 'federation-controller',
  description:
    "Per-cluster federation controller: publishes the cluster's ServiceExports to the clusterset over NATS, imports the other clusters' exports as ServiceImports, signs workload certificates and serves config to the local proxies.",
  status:
    "this build signs workload certificates (POST /v1/certificates), follows the trust bundle over NATS, and with a catalog section publishes ServiceExports and writes ServiceImports; heartbeats, persistence of the catalog and the proxies' discovery API are not built yet.",
  settingsSchema,
  settingsHelp:
    'cluster, trustDomain, stateDir, nats.url, trust.{intermediateCertificate,intermediateKey,bundle}, signing.{address,workloadTtl,joinTokens|kubeconfig}, catalog.{kubeconfig,gatewayAddresses}',
  defaultAdminAddress: '127.0.0.1:15010',
  start: async ({ settings, logger, registry }) => {
    let proof: ProofMode;
    if (settings.signing.kubeconfig) {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(settings.signing.kubeconfig);
      proof = { kind: 'token-review', verifier: new TokenReviewVerifier(kubeConfig) };
    } else {
      proof = { kind: 'join-tokens', tokens: settings.signing.joinTokens! };
    }
    const controller = await startTrustController({
      cluster: settings.cluster,
      trustDomain: settings.trustDomain,
      intermediateCertificatePem: await readFile(settings.trust.intermediateCertificate, 'utf8'),
      intermediateKeyPem: await readFile(settings.trust.intermediateKey, 'utf8'),
      bootstrapBundle: JSON.parse(await readFile(settings.trust.bundle, 'utf8')) as SignedTrustBundle,
      stateDir: settings.stateDir,
      proof,
      workloadTtlMs: settings.signing.workloadTtl,
      listen: splitAddress(settings.signing.address),
      registry,
      log: (level, message, fields) => logger[level](fields ?? {}, message),
    });
    logger.info(
      { signing: controller.url, bundleVersion: controller.trust.bundle.version },
      'signing service listening',
    );

    // NATS may be down at start: the controller serves its last-known-good trust state and
    // attaches when the connection comes up (fail static).
    let connection: NatsConnection | undefined;
    let catalog: CatalogController | undefined;
    let stopped = false;
    if (settings.nats) {
      const url = settings.nats.url;
      void (async () => {
        // Keep trying: a failure here is logged and retried with backoff, never fatal.
        for (let delay = 500; !stopped; delay = Math.min(delay * 2, 30_000)) {
          try {
            connection = await connect({
              servers: url,
              name: `causeway-${settings.cluster}`,
              waitOnFirstConnect: true,
              maxReconnectAttempts: -1,
            });
            if (stopped) break;
            await controller.trust.attach(await NatsTrustStore.open(connection), settings.statusInterval);
            logger.info({ nats: url }, 'following trust updates over NATS');
            if (settings.catalog) {
              const kubeConfig = new KubeConfig();
              kubeConfig.loadFromFile(settings.catalog.kubeconfig);
              catalog = await startCatalogController({
                kubeConfig,
                cluster: settings.cluster,
                trustDomain: settings.trustDomain,
                bus: await CatalogBus.open(connection),
                identity: () => controller.identity(),
                roots: () => controller.trust.bundle.roots.map((pem) => new X509Certificate(pem)),
                gatewayAddresses: settings.catalog.gatewayAddresses,
                registry,
                onError: (error) => logger.warn({ err: error }, 'catalog sync error (retried)'),
                log: (message, fields) => logger.info(fields ?? {}, message),
              });
              // A new intermediate means a new controller certificate: announce it.
              controller.trust.onChange(() => catalog?.announceSigner());
              logger.info({ gateways: settings.catalog.gatewayAddresses }, 'catalog sync running');
            }
            return;
          } catch (error) {
            logger.error(
              { err: error, retryInMs: delay },
              'NATS trust sync failed; serving the last-known-good trust state',
            );
            await connection?.close().catch(() => {});
            connection = undefined;
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
        }
      })();
    }
    return {
      readiness: () => ({ ready: true }),
      stop: async () => {
        stopped = true;
        await catalog?.stop();
        await controller.close();
        await connection?.drain().catch(() => {});
      },
    };
  },
});
