import type { KeyObject, X509Certificate } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  CatalogSync,
  conflictCondition,
  signExportRecord,
  signHeartbeat,
  type CatalogBus,
  type ExportRecord,
} from '@causeway/catalog';
import { ExportReconciler } from './export-reconciler.ts';
import { ImportWriter } from './import-writer.ts';

export interface CatalogControllerOptions {
  readonly kubeConfig: KubeConfig;
  readonly cluster: string;
  readonly trustDomain: string;
  readonly bus: CatalogBus;
  /** The controller's current identity: it signs this cluster's records. */
  readonly identity: () => { certificate: X509Certificate; privateKey: KeyObject; chainPem: string };
  /** The trusted roots now (signers of other clusters are checked against them). */
  readonly roots: () => readonly X509Certificate[];
  /** `host:port` of this cluster's east-west gateway(s), published with every export. */
  readonly gatewayAddresses: readonly string[];
  readonly registry?: Registry;
  /** How often this cluster's heartbeat is published (default 5 s). */
  readonly heartbeatIntervalMs?: number;
  readonly onError?: (error: unknown) => void;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** The catalog half of a federation controller, running. */
export interface CatalogController {
  readonly sync: CatalogSync;
  /** Publishes the controller's certificate chain again (after its identity changed). */
  announceSigner(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Local ServiceExports -> signed records on NATS; every cluster's records -> verified,
 * merged catalog -> ServiceImports and EndpointSlices here, and the Conflict condition of
 * this cluster's own exports.
 */
export async function startCatalogController(options: CatalogControllerOptions): Promise<CatalogController> {
  const onError = options.onError ?? (() => {});
  const announceSigner = async (): Promise<void> => {
    await options.bus.putSigner(options.cluster, options.identity().chainPem);
  };
  await announceSigner();
  const writer = new ImportWriter(options.kubeConfig, onError);
  const published = new Map<string, ExportRecord>();
  const publish = (record: ExportRecord): void => {
    published.set(`${record.namespace}/${record.name}`, record);
    options.bus.putRecord(signExportRecord(record, options.identity())).catch(onError);
  };
  const reconciler = new ExportReconciler({
    kubeConfig: options.kubeConfig,
    cluster: options.cluster,
    gatewayAddresses: options.gatewayAddresses,
    onError,
    onEvent: (event) => {
      if (event.kind === 'ServiceExported') {
        options.log?.('ServiceExported', {
          service: `${event.record.namespace}/${event.record.name}`,
          revision: event.record.revision,
        });
        publish(event.record);
        return;
      }
      const previous = published.get(`${event.namespace}/${event.name}`);
      if (!previous) return;
      options.log?.('ServiceUnexported', { service: `${event.namespace}/${event.name}` });
      // The explicit unexport: a tombstone with a newer revision.
      publish({ ...previous, revision: Math.max(previous.revision + 1, Date.now()), tombstone: true });
    },
  });
  let conditions = Promise.resolve();
  const sync = new CatalogSync({
    trustDomain: options.trustDomain,
    roots: options.roots,
    registry: options.registry,
    onCatalog: (catalog) => {
      writer.submit(catalog, sync.state.live());
      conditions = conditions
        .then(async () => {
          for (const service of catalog.values()) {
            const verdict = service.verdicts.find((v) => v.cluster === options.cluster);
            if (verdict)
              await reconciler.writeCondition(service.namespace, service.name, conflictCondition(verdict));
          }
        })
        .catch(onError);
    },
  });
  await sync.attach(options.bus);
  await reconciler.start();
  let sequence = 0;
  const beat = (): void => {
    sequence = Math.max(sequence + 1, Date.now());
    const heartbeat = {
      cluster: options.cluster,
      sequence,
      time: new Date().toISOString(),
      gatewayAddresses: options.gatewayAddresses,
    };
    options.bus.putHeartbeat(signHeartbeat(heartbeat, options.identity())).catch(onError);
  };
  beat();
  const heartbeats = setInterval(beat, options.heartbeatIntervalMs ?? 5_000);
  return {
    sync,
    announceSigner,
    stop: async () => {
      clearInterval(heartbeats);
      await reconciler.stop();
      sync.detach();
      writer.close();
      await conditions;
    },
  };
}
