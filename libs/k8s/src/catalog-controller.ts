import type { KeyObject, X509Certificate } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  buildClusterset,
  CatalogSync,
  conflictCondition,
  type ConditionValue,
  exportKey,
  signerKey,
  signExportRecord,
  signHeartbeat,
  storedAs,
  verifySignerPem,
  withdrawals,
  type CatalogBus,
  type ClustersetService,
  type ExportRecord,
} from '@causeway/catalog';
import type { CompiledRoute, PolicyView } from '@causeway/discovery';
import { ExportReconciler } from './export-reconciler.ts';
import { ImportWriter } from './import-writer.ts';
import { ROUTE_INPUTS, RouteSource } from './route-source.ts';
import type { ClusterSource, SourceEvent, SourceObject, SourceProblem } from './source.ts';
import { StalenessPolicies } from './staleness-policies.ts';

export interface CatalogControllerOptions {
  /** Where this cluster's objects come from: its API server or a folder of files. */
  readonly source: ClusterSource;
  /** The API server that ServiceImports and their EndpointSlices are written to (Kubernetes mode). */
  readonly importTo?: KubeConfig;
  readonly cluster: string;
  readonly trustDomain: string;
  /** The controller's current identity: it signs this cluster's records. */
  readonly identity: () => { certificate: X509Certificate; privateKey: KeyObject; chainPem: string };
  /** The trusted roots now (signers of other clusters are checked against them). */
  readonly roots: () => readonly X509Certificate[];
  /** `host:port` of this cluster's east-west gateway(s), published with every export. */
  readonly gatewayAddresses: readonly string[];
  readonly registry?: Registry;
  /** Where the last-known-good catalog is persisted (a restart without NATS serves it). */
  readonly statePath?: string;
  /** How often this cluster's heartbeat is published and liveness re-evaluated (default 5 s). */
  readonly heartbeatIntervalMs?: number;
  /** A peer without a heartbeat for this long is stale (default 30 s). */
  readonly staleAfterMs?: number;
  /**
   * How often the controller reads its own keys back from NATS and re-publishes what is
   * missing or not as it published it (default 10 s, each wait drawn within ±20%). A
   * deleted or purged own key is repaired at once.
   */
  readonly repairIntervalMs?: number;
  /** Called after anything proxies see has changed (catalog, local endpoints, liveness). */
  readonly onChange?: () => void;
  readonly onError?: (error: unknown) => void;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** One of this cluster's exports and whether it has reached NATS. */
export interface LocalExportStatus {
  readonly record: ExportRecord;
  readonly published: boolean;
}

/** A local ServiceExport and its conditions as last written. */
export interface ServiceExportStatus {
  readonly namespace: string;
  readonly name: string;
  readonly conditions: ReadonlyArray<ConditionValue & { lastTransitionTime?: string }>;
}

/** The catalog half of a federation controller, running. */
export interface CatalogController {
  readonly sync: CatalogSync;
  /** Starts publishing to and following the NATS catalog bucket. */
  attach(bus: CatalogBus): Promise<void>;
  /**
   * After the controller's identity changed: announces the new signing chain and
   * re-publishes this cluster's records signed with it (so that a cluster that never saw
   * the old chain can verify them). A failed announcement is retried every tick.
   */
  resign(): void;
  /** The clusterset as local proxies need it. */
  clusterset(): ClustersetService[];
  /**
   * What local sidecars can reach: the clusterset, and this cluster's other Services
   * (scope `cluster`: by cluster-local names only).
   */
  proxyServices(): ClustersetService[];
  /** This cluster's exports (tombstones included) and whether each reached NATS. */
  localExports(): LocalExportStatus[];
  /** HTTPRoutes and GRPCRoutes compiled for proxies. */
  routes(): CompiledRoute[];
  /** The cluster's Causeway policies, for proxies. */
  policies(): PolicyView[];
  /** Every local ServiceExport with its conditions (valid or not). */
  serviceExports(): ServiceExportStatus[];
  /** What the source could not read (file mode: malformed files and objects). */
  problems(): readonly SourceProblem[];
  stop(): Promise<void>;
}

/**
 * Local ServiceExports -> signed records on NATS; every cluster's records -> verified,
 * merged catalog -> ServiceImports and EndpointSlices here, the `Ready` and `Conflict`
 * conditions of this cluster's own exports, and the clusterset view for local proxies.
 * Without NATS it runs on the persisted catalog; records that could not be published
 * are retried on every heartbeat tick.
 */
export async function startCatalogController(options: CatalogControllerOptions): Promise<CatalogController> {
  const onError = options.onError ?? (() => {});
  const onChange = options.onChange ?? (() => {});
  const { source } = options;
  const writer = options.importTo ? new ImportWriter(options.importTo, onError) : undefined;
  const published = new Map<string, ExportRecord>();
  const unpublished = new Set<string>();
  let bus: CatalogBus | undefined;
  let flushing: Promise<void> | undefined;

  const flush = (): Promise<void> =>
    (flushing ??= (async () => {
      for (const key of [...unpublished]) {
        const record = published.get(key);
        if (!bus || !record) return;
        try {
          await bus.putRecord(signExportRecord(record, options.identity()));
        } catch (error) {
          onError(error);
          return;
        }
        if (published.get(key) !== record) continue;
        unpublished.delete(key);
        if (!record.tombstone) {
          await reconciler
            .writeCondition(record.namespace, record.name, {
              type: 'Ready',
              status: 'True',
              reason: 'Exported',
              message: `published to the clusterset at revision ${record.revision}`,
            })
            .catch(onError);
        }
      }
    })().finally(() => {
      flushing = undefined;
    }));

  /** The Conflict condition last written per own export. */
  const conflictWritten = new Map<string, string>();

  const publish = (record: ExportRecord): void => {
    const key = `${record.namespace}/${record.name}`;
    published.set(key, record);
    unpublished.add(key);
    if (!record.tombstone && !bus) {
      reconciler
        .writeCondition(record.namespace, record.name, {
          type: 'Ready',
          status: 'False',
          reason: 'Pending',
          message: 'waiting to publish to the clusterset (NATS not connected yet)',
        })
        .catch(onError);
    }
    void flush();
  };

  const reconciler = new ExportReconciler({
    source,
    cluster: options.cluster,
    trustDomain: options.trustDomain,
    gatewayAddresses: options.gatewayAddresses,
    onError,
    onEvent: (event) => {
      if (event.kind === 'ServiceExported') {
        options.log?.('ServiceExported', {
          service: `${event.record.namespace}/${event.record.name}`,
          revision: event.record.revision,
        });
        publish(event.record);
      } else {
        const previous = published.get(`${event.namespace}/${event.name}`);
        if (!previous) return;
        options.log?.('ServiceUnexported', { service: `${event.namespace}/${event.name}` });
        conflictWritten.delete(`${event.namespace}/${event.name}`);
        // The explicit unexport: a tombstone with a newer revision.
        publish({ ...previous, revision: Math.max(previous.revision + 1, Date.now()), tombstone: true });
      }
      onChange();
    },
  });

  const policies = new StalenessPolicies(source, onError);
  const routeSource = new RouteSource(source, {
    exists: (kind, namespace, name) =>
      kind === 'Service'
        ? reconciler.hasService(namespace, name)
        : sync.durableCatalog().has(`${namespace}/${name}`),
    onError,
  });
  /** Compiles the routes again; true if proxies' routes changed. */
  let lastRoutes = '';
  const recompileRoutes = (): boolean => {
    const text = JSON.stringify(routeSource.recompile());
    if (text === lastRoutes) return false;
    lastRoutes = text;
    return true;
  };
  /**
   * Coalesces the events of one turn of the event loop into one re-plan: `routes` tells
   * proxies only if the compiled routes changed, `change` always tells them, `refresh` also
   * re-plans the imports (each covers the ones before it).
   */
  const LEVELS = ['routes', 'change', 'refresh'] as const;
  let scheduled: (typeof LEVELS)[number] | undefined;
  const runScheduled = (): void => {
    const what = scheduled;
    scheduled = undefined;
    if (what === 'refresh') return refresh();
    if (recompileRoutes() || what === 'change') onChange();
  };
  const schedule = (what: (typeof LEVELS)[number]): void => {
    if (scheduled === undefined) setImmediate(runScheduled);
    if (scheduled === undefined || LEVELS.indexOf(what) > LEVELS.indexOf(scheduled)) scheduled = what;
  };
  /**
   * The one processing loop of source events (in the order they happened): exports are
   * re-derived, routes compiled again, and proxies told when what they get changed
   * (identical configs are not sent again); TrafficPolicies can
   * change which silent clusters are withdrawn, so they re-plan the imports.
   */
  const handle = (event: SourceEvent): void => {
    reconciler.handle(event);
    const { kind } = event;
    if (kind === 'TrafficPolicy') schedule('refresh');
    else if (kind === 'AuthorizationPolicy' || kind === 'RateLimitPolicy') schedule('change');
    // Sidecars reach every local Service by its cluster-local names: its endpoints and the
    // pods serving them are in their config.
    else if (kind === 'EndpointSlice' || kind === 'Pod' || kind === 'Service') schedule('change');
    else if (ROUTE_INPUTS.has(kind)) schedule('routes');
  };
  let conditions = Promise.resolve();
  let lastWithdrawals = '';
  const sync = new CatalogSync({
    trustDomain: options.trustDomain,
    roots: options.roots,
    registry: options.registry,
    statePath: options.statePath,
    staleAfterMs: options.staleAfterMs,
    // One of our own keys deleted or purged: put back now, not at the next periodic repair.
    onRemoved: (key) => {
      if (key === signerKey(options.cluster) || key.startsWith(`export.${options.cluster}.`))
        scheduleRepair(200);
    },
    onCatalog: (catalog) => {
      refresh();
      conditions = conditions
        .then(async () => {
          // Only our own exports carry a Conflict condition, written when it changes.
          for (const key of published.keys()) {
            const verdict = catalog.get(key)?.verdicts.find((v) => v.cluster === options.cluster);
            if (!verdict) continue;
            const condition = conflictCondition(verdict);
            const text = JSON.stringify(condition);
            if (conflictWritten.get(key) === text) continue;
            const [namespace, name] = key.split('/') as [string, string];
            await reconciler.writeCondition(namespace, name, condition);
            conflictWritten.set(key, text);
          }
        })
        .catch(onError);
    },
  });

  const withdrawnNow = () =>
    withdrawals(policies.withdrawAfter(), sync.durableCatalog(), sync.peerStatus(), options.cluster);

  /** Re-plans the imports and tells proxies; the writer skips services that did not change. */
  function refresh(): void {
    recompileRoutes();
    const withdrawn = withdrawnNow();
    lastWithdrawals = JSON.stringify([...withdrawn].map(([key, set]) => [key, [...set]]));
    writer?.submit({
      catalog: sync.durableCatalog(),
      records: sync.durableRecords(),
      peers: sync.peerStatus(),
      withdrawn,
      unexported: sync.state.unexported(),
    });
    onChange();
  }

  const restored = await sync.restore().catch((error: unknown) => {
    onError(error);
    return undefined;
  });
  if (restored) options.log?.('restored the last-known-good catalog', restored);
  await source.start(handle);
  reconciler.resync();
  await reconciler.idle();
  // Route status is written from here on, once Services and Gateways have been listed.
  routeSource.enableStatus();
  recompileRoutes();

  /**
   * A ServiceExport deleted while this controller was down leaves its record in the
   * catalog with nobody to unexport it: once the local exports are known, any record of
   * this cluster that no ServiceExport backs any more gets its tombstone.
   */
  const sweepOrphans = (): void => {
    // Only a complete list of ServiceExports says which are gone.
    if (!source.synced('ServiceExport')) return;
    for (const record of sync.state.live()) {
      if (record.cluster !== options.cluster || published.has(`${record.namespace}/${record.name}`)) continue;
      options.log?.('ServiceUnexported', { service: `${record.namespace}/${record.name}`, orphan: true });
      publish({ ...record, revision: Math.max(record.revision + 1, Date.now()), tombstone: true });
    }
  };

  let sequence = 0;
  let lastStale = '';
  const tick = (): void => {
    // Catalog services that appeared since (route backends) are seen at the latest here.
    if (recompileRoutes()) onChange();
    // Liveness changes (a peer going stale, a withdrawal) re-plan the imports.
    const stale = JSON.stringify(sync.peerStatus().map((peer) => [peer.cluster, peer.stale]));
    const withdrawn = JSON.stringify([...withdrawnNow()].map(([key, set]) => [key, [...set]]));
    if (stale !== lastStale || withdrawn !== lastWithdrawals) {
      lastStale = stale;
      refresh();
    }
    if (!bus) return;
    if (announcedChain !== options.identity().chainPem) resign();
    sweepOrphans();
    void flush();
    sequence = Math.max(sequence + 1, Date.now());
    const heartbeat = {
      cluster: options.cluster,
      sequence,
      time: new Date().toISOString(),
      gatewayAddresses: options.gatewayAddresses,
    };
    bus.putHeartbeat(signHeartbeat(heartbeat, options.identity())).catch(onError);
  };
  const timer = setInterval(tick, options.heartbeatIntervalMs ?? 5_000);
  let stopWatch: (() => void) | undefined;

  let announcedChain: string | undefined;
  const announceSigner = async (): Promise<void> => {
    if (!bus) return;
    const chain = options.identity().chainPem;
    if (announcedChain === chain) return;
    await bus.putSigner(options.cluster, chain);
    announcedChain = chain;
  };
  /**
   * Reads this cluster's keys back and puts again what is missing or differs from what it
   * published (the bucket wiped, purged, rolled up, or written over): the signer as it is
   * now, and each record with a new revision (so that every controller takes it again).
   */
  let repairing: Promise<void> | undefined;
  /** Asked for while a repair was reading: it may have read before the change, so once more. */
  let repairAgain = false;
  const repair = (): Promise<void> => {
    if (repairing) {
      repairAgain = true;
      return repairing;
    }
    return repairOnce();
  };
  const repairOnce = (): Promise<void> =>
    (repairing = (async () => {
      if (!bus) return;
      const current = await bus.ownEntries(options.cluster);
      const identity = options.identity();
      if (current.get(signerKey(options.cluster)) !== identity.chainPem) {
        options.log?.('SignerRepaired', { cluster: options.cluster });
        announcedChain = undefined;
        await announceSigner();
      }
      const signer = verifySignerPem(identity.chainPem, options.roots(), options.trustDomain);
      for (const [key, record] of [...published]) {
        // On its way already.
        if (unpublished.has(key)) continue;
        const text = current.get(exportKey(options.cluster, record.namespace, record.name));
        if (text !== undefined && storedAs(text, record, signer)) continue;
        options.log?.('RecordRepaired', { service: key, missing: text === undefined });
        publish({ ...record, revision: Math.max(record.revision + 1, Date.now()) });
      }
    })()
      .catch(onError)
      .finally(() => {
        repairing = undefined;
      })
      .then(() => {
        if (!repairAgain || repairsStopped) return;
        repairAgain = false;
        return repair();
      }));
  let repairTimer: NodeJS.Timeout | undefined;
  let repairsStopped = false;
  const repairEvery = options.repairIntervalMs ?? 10_000;
  /** The wait before the next periodic repair: the interval, ±20%. */
  const nextRepairIn = (): number => repairEvery * (0.8 + 0.4 * Math.random());
  const scheduleRepair = (delayMs: number): void => {
    if (repairsStopped) return;
    clearTimeout(repairTimer);
    repairTimer = setTimeout(() => {
      void repair().finally(() => scheduleRepair(nextRepairIn()));
    }, delayMs);
    repairTimer.unref();
  };

  const resign = (): void => {
    void announceSigner().then(() => {
      for (const record of [...published.values()])
        publish({ ...record, revision: Math.max(record.revision + 1, Date.now()) });
    }, onError);
  };

  const clusterset = (): ClustersetService[] =>
    buildClusterset({
      cluster: options.cluster,
      catalog: sync.durableCatalog(),
      records: sync.durableRecords(),
      peers: sync.peerStatus(),
      withdrawn: withdrawnNow(),
      localEndpoints: (namespace, name) => reconciler.localEndpoints(namespace, name),
    });

  return {
    sync,
    attach: async (catalogBus) => {
      bus = catalogBus;
      await announceSigner();
      await sync.attach(catalogBus);
      stopWatch = () => sync.detach();
      tick();
      scheduleRepair(nextRepairIn());
    },
    resign,
    clusterset,
    proxyServices: () => {
      const services = clusterset();
      const served = new Set(
        services
          .filter((service) => service.backends.some((backend) => backend.kind === 'local'))
          .map((service) => `${service.namespace}/${service.name}`),
      );
      return [...services, ...reconciler.clusterLocalServices(served)];
    },
    routes: () => routeSource.current(),
    policies: () => routeSource.policyViews(),
    serviceExports: () =>
      source
        .list<
          {
            metadata: { namespace: string; name: string };
            status?: { conditions?: ServiceExportStatus['conditions'] };
          } & SourceObject
        >('ServiceExport')
        .map((object) => ({
          namespace: object.metadata.namespace,
          name: object.metadata.name,
          conditions: object.status?.conditions ?? [],
        }))
        .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)),
    problems: () => source.problems(),
    localExports: () =>
      [...published.entries()].map(([key, record]) => ({ record, published: !unpublished.has(key) })),
    stop: async () => {
      clearInterval(timer);
      repairsStopped = true;
      clearTimeout(repairTimer);
      await repairing;
      await source.stop();
      await reconciler.stop();
      stopWatch?.();
      writer?.close();
      await conditions;
      await flushing;
      await sync.flush().catch(onError);
    },
  };
}
