import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Backoff, splitAddress, StateFile } from '@causeway/config';
import { DiscoveryServer, PROXY_RECONNECT_MAX_MS } from '@causeway/discovery';
import type { ProofMode } from '@causeway/identity';
import { TokenReviewVerifier } from '@causeway/identity/token-review';
import { bundleHash, type SignedTrustBundle } from '@causeway/pki';
import { CATALOG_BUCKET } from '@causeway/catalog';
import { CatalogBus, NATS_MAX_PINGS_OUT, NATS_PING_INTERVAL_MS, NatsLink } from '@causeway/nats';
import { FileSource, KubernetesSource, type ClusterSource } from '@causeway/cluster';
import { startCatalogController, type CatalogController } from '@causeway/federation';
import { runComponent } from '@causeway/runtime';
import { NatsTrustStore, startTrustController, TRUST_BUCKET } from '@causeway/trust';
import { startControllerServer } from './server.ts';
import { IN_CLUSTER, settingsSchema, type Settings } from './settings.ts';
import { catalogStatus } from './status.ts';

/**
 * A kubeconfig file, or `in-cluster`: the pod's service account (its token and CA, and the
 * API server from KUBERNETES_SERVICE_HOST/PORT).
 */
function loadKubeConfig(setting: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (setting === IN_CLUSTER) kubeConfig.loadFromCluster();
  else kubeConfig.loadFromFile(setting);
  return kubeConfig;
}

await runComponent<Settings>({
  name: 'federation-controller',
  description:
    "Per-cluster federation controller: publishes the cluster's ServiceExports to the clusterset over NATS, imports the other clusters' exports as ServiceImports, signs workload certificates and serves config to the local proxies.",
  status:
    'this build signs workload certificates (POST /v1/certificates), follows the trust bundle over NATS, with a catalog section publishes ServiceExports (read from an API server, or from a folder of YAML in file mode), writes ServiceImports (Kubernetes mode) and keeps the last-known-good catalog, and streams config snapshots with routes and policies to proxies (POST /v1/discovery/stream).',
  settingsSchema,
  settingsHelp:
    'cluster, trustDomain, stateDir, ingressGateways[], nats.{url,user,passwordFile}, trust.{intermediateCertificate,intermediateKey,bundle}, signing.{address,workloadTtl,joinTokens|kubeconfig}, statusInterval, catalog.{kubeconfig|directory,workloadGrace,gatewayAddresses,heartbeatInterval,staleAfter}',
  defaultAdminAddress: '127.0.0.1:15010',
  start: async ({ settings, logger, registry }) => {
    let proof: ProofMode;
    if (settings.signing.kubeconfig) {
      proof = {
        kind: 'token-review',
        verifier: new TokenReviewVerifier(loadKubeConfig(settings.signing.kubeconfig)),
      };
    } else {
      proof = { kind: 'join-tokens', tokens: settings.signing.joinTokens! };
    }
    const signingAddress = splitAddress(settings.signing.address);
    /**
     * With `signing.address` port 0, the port the system chose the first time is kept in the
     * state folder and listened on again after a restart, so that proxies configured with
     * the controller's URL find it again without the operator pinning a port.
     */
    const listenedPort = new StateFile<{ port: number }>(path.join(settings.stateDir, 'signing-port.json'));
    const previousPort = await listenedPort.read().then(
      (saved) =>
        Number.isInteger(saved?.port) && saved!.port > 0 && saved!.port < 65_536 ? saved!.port : undefined,
      () => undefined,
    );
    let catalog: CatalogController | undefined;
    /** File mode: sidecars register their workloads here. */
    let files: FileSource | undefined;
    let roots: X509Certificate[] = [];
    // The discovery API shares the signing service's HTTPS listener.
    const discovery: DiscoveryServer = new DiscoveryServer({
      cluster: settings.cluster,
      trustDomain: settings.trustDomain,
      roots: () => roots,
      ingressIdentities: settings.ingressGateways.map((account) => {
        const [namespace, serviceAccount] = account.split('/');
        return `spiffe://${settings.trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
      }),
      input: () => ({
        cluster: settings.cluster,
        trustDomain: settings.trustDomain,
        trust: {
          bundleVersion: controller.trust.bundle.version,
          bundleHash: bundleHash(controller.trust.bundle),
          roots: controller.trust.bundle.roots,
        },
        services: catalog?.proxyServices() ?? [],
        routes: catalog?.routes() ?? [],
        gateways: catalog?.gateways() ?? [],
        policies: catalog?.policies() ?? [],
      }),
      registry,
      log: (message, fields) => logger.info(fields ?? {}, message),
      notReady: () => {
        if (!settings.catalog) return undefined;
        if (!catalog) return 'the catalog is not running yet';
        // A config built before the local endpoints were listed would have fewer in it.
        const unlisted = catalog.waitingForLists();
        return unlisted.length ? `the API server has not listed ${unlisted.join(', ')} yet` : undefined;
      },
      ...(settings.catalog?.directory
        ? {
            workloads: {
              // Streams are refused until the catalog (and so `files`) is running.
              register: (proxy, owner, workload) => files!.register(proxy, owner, workload),
              disconnected: (proxy) => files?.disconnected(proxy),
              registered: (proxy) => files?.registered(proxy),
            },
          }
        : {}),
    });
    const controller = await startTrustController({
      cluster: settings.cluster,
      trustDomain: settings.trustDomain,
      intermediateCertificatePem: await readFile(settings.trust.intermediateCertificate, 'utf8'),
      intermediateKeyPem: await readFile(settings.trust.intermediateKey, 'utf8'),
      bootstrapBundle: JSON.parse(await readFile(settings.trust.bundle, 'utf8')) as SignedTrustBundle,
      stateDir: settings.stateDir,
      proof,
      workloadTtlMs: settings.signing.workloadTtl,
      registry,
      log: (level, message, fields) => logger[level](fields ?? {}, message),
    });
    // One HTTPS server, the controller's: the signing API, and the discovery API beside it.
    const server = await startControllerServer({
      trust: controller,
      plugins: [discovery.routes],
      listen: { ...signingAddress, ...(previousPort ? { previousPort } : {}) },
      log: (level, message, fields) => logger[level](fields ?? {}, message),
    });
    // Port 0 is chosen once: a restart listens on the same port again (see listenedPort). A
    // port taken instead of the saved one is not saved: proxies still expect the old one.
    if (previousPort === undefined) {
      listenedPort.write({ port: server.port });
      await listenedPort
        .flush()
        .catch((error: unknown) => logger.warn({ err: error }, 'could not save the signing port'));
    }
    const readRoots = (): void => {
      roots = controller.trust.bundle.roots.map((pem) => new X509Certificate(pem));
    };
    readRoots();
    controller.trust.onChange(() => {
      readRoots();
      discovery.update();
    });
    logger.info(
      { signing: server.url, bundleVersion: controller.trust.bundle.version },
      'signing and discovery service listening',
    );

    let stopped = false;
    const retrying = async (what: string, attempt: () => Promise<void>): Promise<void> => {
      // A failure here is logged and retried with backoff, never fatal (fail static).
      const backoff = new Backoff({ firstMs: 500, maxMs: 30_000 });
      while (!stopped) {
        try {
          await attempt();
          return;
        } catch (error) {
          const delay = Math.round(backoff.next());
          logger.error({ err: error, retryInMs: delay }, `${what} failed; retrying`);
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    };

    // The catalog runs from the persisted last-known-good state and the local API server
    // alone; NATS is attached when it is reachable.
    const catalogStarted = settings.catalog
      ? retrying('starting the catalog', async () => {
          const catalogSettings = settings.catalog!;
          let source: ClusterSource;
          let importTo: KubeConfig | undefined;
          if (catalogSettings.directory) {
            source = new FileSource({
              directory: path.resolve(catalogSettings.directory),
              statePath: path.join(settings.stateDir, 'file-source.json'),
              workloadGraceMs: catalogSettings.workloadGrace,
              // Several times the longest wait of a reconnecting sidecar.
              restoredGraceMs: 4 * PROXY_RECONNECT_MAX_MS,
              onError: (error) => logger.warn({ err: error }, 'file source error'),
              log: (message, fields) => logger.info(fields ?? {}, message),
            });
          } else {
            importTo = loadKubeConfig(catalogSettings.kubeconfig!);
            source = new KubernetesSource(importTo, (error) =>
              logger.warn({ err: error }, 'watch error (restarting the watch)'),
            );
          }
          const starting = startCatalogController({
            source,
            ...(importTo ? { importTo } : {}),
            cluster: settings.cluster,
            trustDomain: settings.trustDomain,
            identity: () => controller.identity(),
            roots: () => roots,
            gatewayAddresses: catalogSettings.gatewayAddresses,
            statePath: path.join(settings.stateDir, 'catalog.json'),
            policyStatePath: path.join(settings.stateDir, 'traffic-policies.json'),
            heartbeatIntervalMs: catalogSettings.heartbeatInterval,
            staleAfterMs: catalogSettings.staleAfter,
            registry,
            onChange: () => discovery.update(),
            onError: (error) => logger.warn({ err: error }, 'catalog sync error (retried)'),
            log: (message, fields) => logger.info(fields ?? {}, message),
          });
          try {
            catalog = await starting;
          } catch (error) {
            // A failed start leaves nothing behind (the next attempt makes a new source).
            await source.stop().catch(() => {});
            throw error;
          }
          // Sidecars register workloads only once the folder has been read and the
          // persisted registrations restored.
          if (source instanceof FileSource) files = source;
          // A new controller certificate (new intermediate, or renewed at half its life):
          // announce it and re-sign this cluster's records.
          controller.onIdentity(() => catalog?.resign());
          discovery.update();
          logger.info(
            { gateways: catalogSettings.gatewayAddresses, services: catalog.clusterset().length },
            'catalog running',
          );
        })
      : Promise.resolve();

    let connection: NatsConnection | undefined;
    const natsLink = new NatsLink(registry, settings.nats?.url);
    if (settings.nats) {
      const url = settings.nats.url;
      void retrying('attaching to NATS', async () => {
        try {
          connection = await connect({
            servers: url,
            ...(settings.nats!.user
              ? {
                  user: settings.nats!.user,
                  pass: (await readFile(settings.nats!.passwordFile!, 'utf8')).trim(),
                }
              : {}),
            name: `causeway-${settings.cluster}`,
            waitOnFirstConnect: true,
            maxReconnectAttempts: -1,
            pingInterval: NATS_PING_INTERVAL_MS,
            maxPingOut: NATS_MAX_PINGS_OUT,
          });
          natsLink.follow(connection);
          const trustStore = await NatsTrustStore.open(connection);
          if (!trustStore.hardened)
            logger.warn(
              { bucket: TRUST_BUCKET },
              'the trust bucket accepts rollups, purges and message deletes; run `causeway nats-init` as the operator to refuse them',
            );
          await controller.trust.attach(trustStore, settings.statusInterval);
          logger.info({ nats: url }, 'following trust updates over NATS');
          await catalogStarted;
          if (catalog && !stopped) {
            const bus = await CatalogBus.open(connection);
            if (!bus.hardened)
              logger.warn(
                { bucket: CATALOG_BUCKET },
                'the catalog bucket accepts rollups, purges and message deletes; run `causeway nats-init` as the operator to refuse them',
              );
            await catalog.attach(bus);
            logger.info({ nats: url }, 'catalog attached to NATS');
          }
        } catch (error) {
          natsLink.failed(`could not attach to NATS at ${url}: ${(error as Error).message}`);
          controller.trust.detach();
          await connection?.close().catch(() => {});
          connection = undefined;
          throw error;
        }
      });
    }
    return {
      readiness: () =>
        settings.catalog && !catalog
          ? { ready: false, reason: 'the catalog is not running yet' }
          : { ready: true },
      debug: {
        config: (query) => {
          const proxy = query.get('proxy');
          return proxy ? discovery.debugConfig(proxy) : { proxies: discovery.proxies() };
        },
        catalog: () =>
          catalogStatus({
            cluster: settings.cluster,
            mode: settings.catalog ? (settings.catalog.directory ? 'files' : 'kubernetes') : undefined,
            trustDomain: settings.trustDomain,
            nats: natsLink.condition(),
            catalog,
            proxies: discovery.proxies(),
          }),
      },
      stop: async () => {
        stopped = true;
        discovery.close();
        await catalog?.stop();
        await server.close();
        await controller.close();
        await connection?.drain().catch(() => {});
      },
    };
  },
});
