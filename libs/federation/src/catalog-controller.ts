import type { KeyObject, X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  buildClusterset,
  CatalogSync,
  type ConditionValue,
  exportKey,
  signerKey,
  signExportRecord,
  signHeartbeat,
  storedAs,
  verifySignerPem,
  withdrawals,
  type ClustersetService,
  type ExportRecord,
  type VerifiedSigner,
} from '@causeway/catalog';
import { type CatalogBus } from '@causeway/nats';
import { jitter, StateFile } from '@causeway/config';
import type { CompiledGateway, CompiledRoute, PolicyView } from '@causeway/discovery';
import {
  initialCatalogState,
  plan,
  type CatalogEffect,
  type CatalogEvent,
  type DifferingEntry,
} from './catalog-plan.ts';
import { ExportReconciler } from './export-reconciler.ts';
import { ImportWriter } from '@causeway/cluster';
import { RouteSource } from './route-source.ts';
import type { TrafficPolicyVerdict } from './traffic-policies.ts';
import type { ClusterSource, SourceObject, SourceProblem } from '@causeway/cluster';
import { StalenessPolicies } from './staleness-policies.ts';

/** How long a stopping controller keeps putting what it has queued. */
const STOP_GRACE_MS = 5_000;

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
  /** Where each TrafficPolicy's last valid spec is persisted (an invalid one keeps it across restarts). */
  readonly policyStatePath?: string;
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
  /**
   * How often the bucket is checked for entries lost without markers (a rollup, a stream
   * purge, message deletes; one stream-info request, see `CatalogBus.lostEntries`); the
   * repair runs at once on a loss (default 2 s, ±20%).
   */
  readonly lossCheckIntervalMs?: number;
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
  /** The Gateways of Causeway's class, compiled for ingress gateways. */
  gateways(): CompiledGateway[];
  /** The cluster's Causeway policies, for proxies. */
  policies(): PolicyView[];
  /** What each TrafficPolicy came to: valid or why not, the spec in force, its conditions per target. */
  trafficPolicies(): readonly TrafficPolicyVerdict[];
  /** Every local ServiceExport with its conditions (valid or not). */
  serviceExports(): ServiceExportStatus[];
  /** What the source could not read (file mode: malformed files and objects). */
  problems(): readonly SourceProblem[];
  /** Kinds exports are derived from that the source has not listed yet (none once it has). */
  waitingForLists(): string[];
  stop(): Promise<void>;
}

/**
 * Local ServiceExports -> signed records on NATS; every cluster's records -> verified,
 * merged catalog -> ServiceImports and EndpointSlices here, the `Ready` and `Conflict`
 * conditions of this cluster's own exports, and the clusterset view for local proxies.
 * Without NATS it runs on the persisted catalog; records that could not be published
 * are retried on every heartbeat tick.
 *
 * Everything that happens (the source, NATS, timers, the outcome of earlier effects) is
 * one typed event in one queue; `plan` (catalog-plan.ts) decides, and the adapters here
 * carry out its effects. The events of one turn of the event loop are planned together,
 * so a burst of changes re-plans the imports and tells proxies once.
 */
export async function startCatalogController(options: CatalogControllerOptions): Promise<CatalogController> {
  const onError = options.onError ?? (() => {});
  const onChange = options.onChange ?? (() => {});
  const { source } = options;
  const writer = options.importTo ? new ImportWriter(options.importTo, onError) : undefined;
  const state = initialCatalogState(options.cluster);
  let bus: CatalogBus | undefined;
  /** No new repair, loss check or tick once stopping; no event at all once stopped. */
  let stopping = false;
  let stopped = false;

  const queue: CatalogEvent[] = [];
  let drainScheduled = false;
  /** Outstanding I/O of effects (awaited on stop). */
  const inFlight = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>): void => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };
  const enqueue = (event: CatalogEvent): void => {
    if (stopped) return;
    queue.push(event);
    if (drainScheduled) return;
    drainScheduled = true;
    setImmediate(drain);
  };
  function drain(): void {
    drainScheduled = false;
    if (stopped) {
      queue.length = 0;
      return;
    }
    const effects: CatalogEffect[] = [];
    for (const event of queue.splice(0)) effects.push(...plan(state, event, Date.now()));
    perform(effects);
  }
  /** Resolves once every queued event has been planned. */
  const settled = async (): Promise<void> => {
    while (queue.length > 0 || drainScheduled) await new Promise(setImmediate);
  };

  /** Condition writes go one at a time, in the order they were planned. */
  let conditions = Promise.resolve();
  function perform(effects: readonly CatalogEffect[]): void {
    let routes = false;
    let notify = false;
    let imports = false;
    for (const effect of effects) {
      switch (effect.type) {
        case 'RecompileRoutes':
          routes = true;
          break;
        case 'NotifyProxies':
          notify = true;
          break;
        case 'WriteImports':
          imports = true;
          break;
        case 'Log':
          options.log?.(effect.message, effect.fields);
          break;
        case 'Report':
          onError(effect.error);
          break;
        case 'PutRecord': {
          const { key, record } = effect;
          track(
            (async () => bus!.putRecord(signExportRecord(record, options.identity())))().then(
              () => enqueue({ type: 'RecordPut', key, record }),
              (error: unknown) => enqueue({ type: 'RecordPutFailed', key, error }),
            ),
          );
          break;
        }
        case 'PutSigner': {
          const { chain } = effect;
          track(
            bus!.putSigner(options.cluster, chain).then(
              () => enqueue({ type: 'SignerPut', chain }),
              (error: unknown) => enqueue({ type: 'SignerPutFailed', chain, error }),
            ),
          );
          break;
        }
        case 'PutHeartbeat': {
          const heartbeat = {
            cluster: options.cluster,
            sequence: effect.sequence,
            time: effect.time,
            gatewayAddresses: options.gatewayAddresses,
          };
          track(
            (async () => bus!.putHeartbeat(signHeartbeat(heartbeat, options.identity())))().catch(onError),
          );
          break;
        }
        case 'WriteCondition': {
          const { key, namespace, name, condition } = effect;
          conditions = conditions.then(() =>
            reconciler.writeCondition(namespace, name, condition).catch((error: unknown) => {
              onError(error);
              enqueue({ type: 'ConditionWriteFailed', key, condition });
            }),
          );
          break;
        }
        case 'ReadOwnEntries':
          track(readOwnEntries(effect.records).then(enqueue));
          break;
        case 'ScheduleRepair':
          scheduleRepair(effect.soon ? 200 : jitter(options.repairIntervalMs ?? 10_000, 0.2));
          break;
      }
    }
    if (imports) writeImports();
    else if (routes || notify) {
      if (recompileRoutes() || notify) onChange();
    }
  }

  /** Reads this cluster's keys back and says which differ from what it published. */
  const readOwnEntries = async (
    records: ReadonlyArray<readonly [string, ExportRecord]>,
  ): Promise<CatalogEvent> => {
    let current: Map<string, string>;
    let chain: string;
    try {
      current = await bus!.ownEntries(options.cluster);
      chain = options.identity().chainPem;
    } catch (error) {
      return { type: 'OwnEntriesReadFailed', error };
    }
    let signer: VerifiedSigner | undefined;
    try {
      signer = verifySignerPem(chain, options.roots(), options.trustDomain);
    } catch (error) {
      // Records are compared only when the roots verify the chain (they may lag during a
      // rotation); missing ones and the signer are repaired all the same.
      onError(error);
    }
    const differing: DifferingEntry[] = [];
    for (const [key, record] of records) {
      const text = current.get(exportKey(options.cluster, record.namespace, record.name));
      if (text === undefined || (signer && !storedAs(text, record, signer)))
        differing.push({ key, record, missing: text === undefined });
    }
    return {
      type: 'OwnEntriesRead',
      chain,
      signerMatches: current.get(signerKey(options.cluster)) === chain,
      differing,
    };
  };

  const reconciler = new ExportReconciler({
    source,
    cluster: options.cluster,
    trustDomain: options.trustDomain,
    gatewayAddresses: options.gatewayAddresses,
    onError,
    onEvent: (event) =>
      enqueue(
        event.kind === 'ServiceExported'
          ? { type: 'ExportDerived', record: event.record }
          : { type: 'ExportRemoved', namespace: event.namespace, name: event.name },
      ),
  });

  const policies = new StalenessPolicies(
    () => routeSource.policyViews().filter((view) => view.kind === 'TrafficPolicy'),
    onError,
  );
  const routeSource = new RouteSource(source, {
    exists: (kind, namespace, name) =>
      kind === 'Service'
        ? reconciler.hasService(namespace, name)
        : sync.durableCatalog().has(`${namespace}/${name}`),
    onError,
    ...(options.policyStatePath ? { lastValidFile: new StateFile(options.policyStatePath) } : {}),
  });
  await routeSource.restore();
  /** Compiles the routes again; true if proxies' routes changed. */
  let lastRoutes: CompiledRoute[] = [];
  let lastGateways: CompiledGateway[] = [];
  const recompileRoutes = (): boolean => {
    const routes = routeSource.recompile();
    const gateways = routeSource.currentGateways();
    if (isDeepStrictEqual(routes, lastRoutes) && isDeepStrictEqual(gateways, lastGateways)) return false;
    lastRoutes = routes;
    lastGateways = gateways;
    return true;
  };
  const sync = new CatalogSync({
    trustDomain: options.trustDomain,
    roots: options.roots,
    registry: options.registry,
    statePath: options.statePath,
    staleAfterMs: options.staleAfterMs,
    onRemoved: (key) => enqueue({ type: 'KeyRemoved', key }),
    onCatalog: (catalog) => enqueue({ type: 'CatalogApplied', catalog }),
  });

  const withdrawnNow = () =>
    withdrawals(policies.withdrawAfter(), sync.durableCatalog(), sync.peerStatus(), options.cluster);

  /** Re-plans the imports and tells proxies; the writer skips services that did not change. */
  function writeImports(): void {
    recompileRoutes();
    writer?.submit({
      catalog: sync.durableCatalog(),
      records: sync.durableRecords(),
      peers: sync.peerStatus(),
      withdrawn: withdrawnNow(),
      unexported: sync.state.unexported(),
    });
    onChange();
  }

  const restored = await sync.restore().catch((error: unknown) => {
    onError(error);
    return undefined;
  });
  if (restored) options.log?.('restored the last-known-good catalog', restored);
  await source.start((event) => {
    reconciler.handle(event);
    enqueue({ type: 'SourceChanged', kind: event.kind });
  });
  reconciler.resync();
  await reconciler.idle();
  await settled();
  // Route status is written from here on, once Services and Gateways have been listed.
  routeSource.enableStatus();
  recompileRoutes();

  const tick = (): void => {
    reconciler.release();
    enqueue({
      type: 'HeartbeatTick',
      chain: options.identity().chainPem,
      liveness: {
        stale: sync.peerStatus().map((peer) => [peer.cluster, peer.stale] as const),
        withdrawn: withdrawnNow(),
      },
      // Only complete lists say which exports are gone.
      ownLive: reconciler.complete()
        ? sync.state.live().filter((record) => record.cluster === options.cluster)
        : undefined,
      unlisted: reconciler.unlisted(),
    });
  };
  const timer = setInterval(tick, options.heartbeatIntervalMs ?? 5_000);

  let repairTimer: NodeJS.Timeout | undefined;
  let repairDueAt = Number.POSITIVE_INFINITY;
  /** Arms the repair timer, unless it is armed for earlier already (a removed key's repair). */
  const scheduleRepair = (delayMs: number): void => {
    if (stopping) return;
    const due = performance.now() + delayMs;
    if (repairTimer && due >= repairDueAt) return;
    clearTimeout(repairTimer);
    repairDueAt = due;
    repairTimer = setTimeout(() => {
      repairTimer = undefined;
      repairDueAt = Number.POSITIVE_INFINITY;
      enqueue({ type: 'RepairTick' });
    }, delayMs);
    repairTimer.unref();
  };

  let lossTimer: NodeJS.Timeout | undefined;
  /** Each attach starts one loop; an older loop ends at its next turn. */
  let lossLoop = 0;
  const checkLoss = (loop: number): void => {
    if (stopping || loop !== lossLoop) return;
    lossTimer = setTimeout(
      () => {
        track(
          (async () => {
            if (bus && (await bus.lostEntries())) enqueue({ type: 'LossDetected' });
          })()
            // NATS away: its status says so already; the check runs again when it is back.
            .catch(() => {})
            .finally(() => checkLoss(loop)),
        );
      },
      jitter(options.lossCheckIntervalMs ?? 2_000, 0.2),
    );
    lossTimer.unref();
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
      if (stopping) throw new Error('the catalog controller is stopping');
      const chain = options.identity().chainPem;
      await catalogBus.putSigner(options.cluster, chain);
      await sync.attach(catalogBus);
      bus = catalogBus;
      enqueue({ type: 'Attached', chain });
      tick();
      clearTimeout(lossTimer);
      checkLoss(++lossLoop);
    },
    resign: () => enqueue({ type: 'IdentityRenewed', chain: options.identity().chainPem }),
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
    gateways: () => routeSource.currentGateways(),
    policies: () => routeSource.policyViews(),
    trafficPolicies: () => routeSource.trafficPolicyVerdicts(),
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
    waitingForLists: () => reconciler.unlisted(),
    localExports: () =>
      [...state.published.entries()].map(([key, record]) => ({
        record,
        published: !state.unpublished.has(key),
      })),
    stop: async () => {
      clearInterval(timer);
      stopping = true;
      clearTimeout(repairTimer);
      clearTimeout(lossTimer);
      await source.stop();
      await reconciler.stop();
      // What the source and the reconciler said last is planned, and what that puts (one
      // record after another: tombstones of exports deleted just before) reaches NATS,
      // for at most STOP_GRACE_MS.
      const deadline = Date.now() + STOP_GRACE_MS;
      while ((queue.length > 0 || drainScheduled || inFlight.size > 0) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      stopped = true;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      await routeSource.flush().catch(onError);
      sync.detach();
      writer?.close();
      await conditions;
      await sync.flush().catch(onError);
    },
  };
}
