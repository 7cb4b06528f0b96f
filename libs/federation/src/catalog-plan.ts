import { isDeepStrictEqual } from 'node:util';
import {
  conflictCondition,
  signerKey,
  type ConditionValue,
  type ExportRecord,
  type MergedService,
  type Withdrawals,
} from '@causeway/catalog';
import { ROUTE_INPUTS } from './route-source.ts';
import type { SourceKind } from '@causeway/cluster';

/**
 * The catalog controller's decisions, apart from the I/O that carries them out: `plan`
 * takes the controller's state and one event, updates the state and returns the effects.
 * It reads no clock (the time comes with the event) and does no I/O; the adapters in
 * `catalog-controller.ts` queue the events (the source, NATS, timers, the answers to
 * earlier effects) and perform the effects.
 */

/** What goes stale and is withdrawn, as of a heartbeat tick; a change re-plans the imports. */
export interface Liveness {
  /** Each known cluster and whether its heartbeat is stale. */
  readonly stale: ReadonlyArray<readonly [string, boolean]>;
  readonly withdrawn: Withdrawals;
}

/** One of this cluster's records as NATS holds it, where it differs from the published one. */
export interface DifferingEntry {
  readonly key: string;
  /** The record that was compared (it may have been replaced since). */
  readonly record: ExportRecord;
  /** No entry at all (rather than another one). */
  readonly missing: boolean;
}

export type CatalogEvent =
  /** The source (API server or files) changed an object of this kind. */
  | { readonly type: 'SourceChanged'; readonly kind: SourceKind }
  /** A local ServiceExport's record, derived again (new, or its Service or endpoints changed). */
  | { readonly type: 'ExportDerived'; readonly record: ExportRecord }
  /** A local ServiceExport is gone (or no longer valid). */
  | { readonly type: 'ExportRemoved'; readonly namespace: string; readonly name: string }
  /** The merged catalog changed (records from any cluster applied). */
  | { readonly type: 'CatalogApplied'; readonly catalog: ReadonlyMap<string, MergedService> }
  /** A key was deleted or purged from the bucket. */
  | { readonly type: 'KeyRemoved'; readonly key: string }
  /** Connected to the bucket, with this signing chain announced. */
  | { readonly type: 'Attached'; readonly chain: string }
  /**
   * The heartbeat interval came round: the controller's chain now, the liveness of peers,
   * this cluster's live records in the catalog (only once every local export has been
   * derived from complete lists), and the kinds not listed yet.
   */
  | {
      readonly type: 'HeartbeatTick';
      readonly chain: string;
      readonly liveness: Liveness;
      readonly ownLive: readonly ExportRecord[] | undefined;
      readonly unlisted: readonly string[];
    }
  /** The controller's identity was renewed: its new signing chain. */
  | { readonly type: 'IdentityRenewed'; readonly chain: string }
  | { readonly type: 'SignerPut'; readonly chain: string }
  | { readonly type: 'SignerPutFailed'; readonly chain: string; readonly error: unknown }
  | { readonly type: 'RecordPut'; readonly key: string; readonly record: ExportRecord }
  | { readonly type: 'RecordPutFailed'; readonly key: string; readonly error: unknown }
  | { readonly type: 'ConditionWriteFailed'; readonly key: string; readonly condition: ConditionValue }
  /** Time for the periodic read-back of this cluster's keys. */
  | { readonly type: 'RepairTick' }
  /** Entries went missing from the bucket without markers (a rollup, a stream purge). */
  | { readonly type: 'LossDetected' }
  /** This cluster's keys, read back and compared with what was published. */
  | {
      readonly type: 'OwnEntriesRead';
      readonly chain: string;
      readonly signerMatches: boolean;
      readonly differing: readonly DifferingEntry[];
    }
  | { readonly type: 'OwnEntriesReadFailed'; readonly error: unknown };

export type CatalogEffect =
  /** Sign the record with the controller's identity and put it. */
  | { readonly type: 'PutRecord'; readonly key: string; readonly record: ExportRecord }
  | { readonly type: 'PutSigner'; readonly chain: string }
  /** Sign and put this cluster's heartbeat. */
  | { readonly type: 'PutHeartbeat'; readonly sequence: number; readonly time: string }
  /** Write a condition on a local ServiceExport (in order with the other condition writes). */
  | {
      readonly type: 'WriteCondition';
      readonly key: string;
      readonly namespace: string;
      readonly name: string;
      readonly condition: ConditionValue;
    }
  /** Read this cluster's keys back and compare them with these records and the chain. */
  | { readonly type: 'ReadOwnEntries'; readonly records: ReadonlyArray<readonly [string, ExportRecord]> }
  /** Arm the repair timer: `soon` (a key of ours was removed) or the jittered period. */
  | { readonly type: 'ScheduleRepair'; readonly soon: boolean }
  /** Compile the routes again; proxies are told if they changed. */
  | { readonly type: 'RecompileRoutes' }
  /** Tell proxies (their configs are built again; identical ones are not sent). */
  | { readonly type: 'NotifyProxies' }
  /** Re-plan the ServiceImports and their EndpointSlices, and tell proxies. */
  | { readonly type: 'WriteImports' }
  | { readonly type: 'Log'; readonly message: string; readonly fields: Record<string, unknown> }
  | { readonly type: 'Report'; readonly error: unknown };

export interface CatalogState {
  readonly cluster: string;
  /** Connected to the bucket: records and heartbeats can be put. */
  attached: boolean;
  /** This cluster's exports as last derived (tombstones included), by `namespace/name`. */
  readonly published: Map<string, ExportRecord>;
  /** Keys whose record NATS has not acknowledged as it is now (in the order they changed). */
  readonly unpublished: Set<string>;
  /** The one record put in flight (puts go one at a time; a failure waits for the next tick). */
  putting: string | undefined;
  /** The signing chain NATS holds for this cluster, as far as this controller knows. */
  announcedChain: string | undefined;
  /** A signer put in flight. */
  announcing: string | undefined;
  /** Once the signer is announced, put every record again, signed anew (the identity changed). */
  resignPending: boolean;
  /** The Conflict condition last written per own export. */
  readonly conflictWritten: Map<string, ConditionValue>;
  heartbeatSequence: number;
  liveness: Liveness | undefined;
  /** When exports held for unlisted kinds were last reported. */
  heldReportedAt: number;
  /** The read-back of own keys: none, one in flight, or one in flight and another asked for. */
  repair: 'idle' | 'reading' | 'again';
}

/** How long exports may wait for unlisted kinds between two reports of it. */
export const HELD_REPORT_INTERVAL_MS = 30_000;

export function initialCatalogState(cluster: string): CatalogState {
  return {
    cluster,
    attached: false,
    published: new Map(),
    unpublished: new Set(),
    putting: undefined,
    announcedChain: undefined,
    announcing: undefined,
    resignPending: false,
    conflictWritten: new Map(),
    heartbeatSequence: 0,
    liveness: undefined,
    heldReportedAt: Number.NEGATIVE_INFINITY,
    repair: 'idle',
  };
}

const keyOf = (record: { namespace: string; name: string }): string => `${record.namespace}/${record.name}`;

/** A revision newer than the record's and not behind the clock (every controller takes it). */
const newRevision = (record: ExportRecord, now: number): number => Math.max(record.revision + 1, now);

/** Updates `state` for `event` at time `now` (epoch ms) and returns what to do. */
export function plan(state: CatalogState, event: CatalogEvent, now: number): CatalogEffect[] {
  const effects: CatalogEffect[] = [];
  switch (event.type) {
    case 'SourceChanged':
      // TrafficPolicies can change which silent clusters are withdrawn.
      if (event.kind === 'TrafficPolicy') effects.push({ type: 'WriteImports' });
      // Sidecars reach every local Service by its cluster-local names: its endpoints and
      // the pods serving them are in their config, and so are the policies.
      else if (PROXY_INPUTS.has(event.kind)) effects.push({ type: 'NotifyProxies' });
      else if (ROUTE_INPUTS.has(event.kind)) effects.push({ type: 'RecompileRoutes' });
      break;
    case 'ExportDerived':
      effects.push({
        type: 'Log',
        message: 'ServiceExported',
        fields: { service: keyOf(event.record), revision: event.record.revision },
      });
      publish(state, event.record, effects);
      effects.push({ type: 'NotifyProxies' });
      break;
    case 'ExportRemoved': {
      const key = keyOf(event);
      const previous = state.published.get(key);
      if (!previous) break;
      effects.push({ type: 'Log', message: 'ServiceUnexported', fields: { service: key } });
      state.conflictWritten.delete(key);
      // The explicit unexport: a tombstone with a newer revision.
      publish(state, { ...previous, revision: newRevision(previous, now), tombstone: true }, effects);
      effects.push({ type: 'NotifyProxies' });
      break;
    }
    case 'CatalogApplied':
      effects.push({ type: 'WriteImports' });
      // Only this cluster's own exports carry a Conflict condition, written when it changes.
      for (const key of state.published.keys()) {
        const verdict = event.catalog.get(key)?.verdicts.find((v) => v.cluster === state.cluster);
        if (!verdict) continue;
        const condition = conflictCondition(verdict);
        if (isDeepStrictEqual(state.conflictWritten.get(key), condition)) continue;
        state.conflictWritten.set(key, condition);
        effects.push(writeCondition(key, condition));
      }
      break;
    case 'ConditionWriteFailed':
      // Written again at the next change of the catalog.
      if (isDeepStrictEqual(state.conflictWritten.get(event.key), event.condition))
        state.conflictWritten.delete(event.key);
      break;
    case 'KeyRemoved':
      // One of this cluster's keys deleted or purged: put back now, not at the next repair.
      if (event.key === signerKey(state.cluster) || event.key.startsWith(`export.${state.cluster}.`))
        effects.push({ type: 'ScheduleRepair', soon: true });
      break;
    case 'Attached':
      state.attached = true;
      state.announcedChain = event.chain;
      effects.push({ type: 'ScheduleRepair', soon: false });
      putNext(state, effects);
      break;
    case 'HeartbeatTick':
      heartbeat(state, event, now, effects);
      break;
    case 'IdentityRenewed':
      // Announce the new chain, then put every record signed with it, so that a cluster
      // that never saw the old chain can verify them.
      if (state.attached) announce(state, event.chain, true, effects);
      break;
    case 'SignerPut':
      state.announcing = undefined;
      state.announcedChain = event.chain;
      if (state.resignPending) {
        state.resignPending = false;
        for (const record of [...state.published.values()])
          publish(state, { ...record, revision: newRevision(record, now) }, effects);
      }
      break;
    case 'SignerPutFailed':
      // The next heartbeat tick announces it again.
      state.announcing = undefined;
      effects.push({ type: 'Report', error: event.error });
      break;
    case 'RecordPut': {
      state.putting = undefined;
      const record = state.published.get(event.key);
      // Replaced while in flight: the newer one is put next.
      if (record === event.record) {
        state.unpublished.delete(event.key);
        if (!record.tombstone)
          effects.push(
            writeCondition(event.key, {
              type: 'Ready',
              status: 'True',
              reason: 'Exported',
              message: `published to the clusterset at revision ${record.revision}`,
            }),
          );
      }
      putNext(state, effects);
      break;
    }
    case 'RecordPutFailed':
      // NATS is away or refused it: the next heartbeat tick tries again.
      state.putting = undefined;
      effects.push({ type: 'Report', error: event.error });
      break;
    case 'LossDetected':
      effects.push({ type: 'Log', message: 'CatalogLossDetected', fields: { cluster: state.cluster } });
      startRepair(state, effects);
      break;
    case 'RepairTick':
      startRepair(state, effects);
      break;
    case 'OwnEntriesRead':
      if (!event.signerMatches) {
        effects.push({ type: 'Log', message: 'SignerRepaired', fields: { cluster: state.cluster } });
        state.announcedChain = undefined;
        announce(state, event.chain, false, effects);
      }
      for (const { key, record, missing } of event.differing) {
        // Replaced since, or on its way already.
        if (state.published.get(key) !== record || state.unpublished.has(key)) continue;
        effects.push({ type: 'Log', message: 'RecordRepaired', fields: { service: key, missing } });
        publish(state, { ...record, revision: newRevision(record, now) }, effects);
      }
      repairDone(state, effects);
      break;
    case 'OwnEntriesReadFailed':
      effects.push({ type: 'Report', error: event.error });
      repairDone(state, effects);
      break;
  }
  return effects;
}

/** Kinds that only change what proxies are told. */
const PROXY_INPUTS: ReadonlySet<SourceKind> = new Set([
  'AuthorizationPolicy',
  'RateLimitPolicy',
  'EndpointSlice',
  'Pod',
  'Service',
]);

function writeCondition(key: string, condition: ConditionValue): CatalogEffect {
  const [namespace, name] = key.split('/') as [string, string];
  return { type: 'WriteCondition', key, namespace, name, condition };
}

/** Records this cluster's export as it is now and puts it when it can. */
function publish(state: CatalogState, record: ExportRecord, effects: CatalogEffect[]): void {
  const key = keyOf(record);
  state.published.set(key, record);
  state.unpublished.add(key);
  if (!record.tombstone && !state.attached)
    effects.push(
      writeCondition(key, {
        type: 'Ready',
        status: 'False',
        reason: 'Pending',
        message: 'waiting to publish to the clusterset (NATS not connected yet)',
      }),
    );
  putNext(state, effects);
}

/** Puts the oldest unpublished record, unless one is in flight. */
function putNext(state: CatalogState, effects: CatalogEffect[]): void {
  if (!state.attached || state.putting !== undefined) return;
  const [key] = state.unpublished;
  if (key === undefined) return;
  state.putting = key;
  effects.push({ type: 'PutRecord', key, record: state.published.get(key)! });
}

function announce(state: CatalogState, chain: string, resign: boolean, effects: CatalogEffect[]): void {
  if (resign) state.resignPending = true;
  if (state.announcing === chain) return;
  state.announcing = chain;
  effects.push({ type: 'PutSigner', chain });
}

function heartbeat(
  state: CatalogState,
  event: Extract<CatalogEvent, { type: 'HeartbeatTick' }>,
  now: number,
  effects: CatalogEffect[],
): void {
  if (event.unlisted.length > 0 && now - state.heldReportedAt > HELD_REPORT_INTERVAL_MS) {
    state.heldReportedAt = now;
    effects.push({
      type: 'Report',
      error: new Error(
        `exports wait for the first successful list of ${event.unlisted.join(', ')} (check the API server and this controller's permissions)`,
      ),
    });
  }
  // Catalog services that appeared since (route backends) are seen at the latest here.
  effects.push({ type: 'RecompileRoutes' });
  // A peer going stale or a withdrawal re-plans the imports.
  if (!isDeepStrictEqual(state.liveness, event.liveness)) {
    state.liveness = event.liveness;
    effects.push({ type: 'WriteImports' });
  }
  if (!state.attached) return;
  if (state.announcedChain !== event.chain) announce(state, event.chain, true, effects);
  // A ServiceExport deleted while this controller was down leaves its record in the
  // catalog with nobody to unexport it: once every local export is known, a record of
  // this cluster that no ServiceExport backs gets its tombstone.
  for (const record of event.ownLive ?? []) {
    const key = keyOf(record);
    if (record.cluster !== state.cluster || state.published.has(key)) continue;
    effects.push({ type: 'Log', message: 'ServiceUnexported', fields: { service: key, orphan: true } });
    publish(state, { ...record, revision: newRevision(record, now), tombstone: true }, effects);
  }
  putNext(state, effects);
  state.heartbeatSequence = Math.max(state.heartbeatSequence + 1, now);
  effects.push({
    type: 'PutHeartbeat',
    sequence: state.heartbeatSequence,
    time: new Date(now).toISOString(),
  });
}

function startRepair(state: CatalogState, effects: CatalogEffect[]): void {
  if (!state.attached) return;
  // Asked for while a read is in flight: it may have read before the change, so once more.
  if (state.repair !== 'idle') {
    state.repair = 'again';
    return;
  }
  state.repair = 'reading';
  effects.push(readOwnEntries(state));
}

function repairDone(state: CatalogState, effects: CatalogEffect[]): void {
  if (state.repair === 'again') {
    state.repair = 'reading';
    effects.push(readOwnEntries(state));
    return;
  }
  state.repair = 'idle';
  effects.push({ type: 'ScheduleRepair', soon: false });
}

/** The records NATS should hold as they are (those on their way are left out). */
function readOwnEntries(state: CatalogState): CatalogEffect {
  return {
    type: 'ReadOwnEntries',
    records: [...state.published].filter(([key]) => !state.unpublished.has(key)),
  };
}
