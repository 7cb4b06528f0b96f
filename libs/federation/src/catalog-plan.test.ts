import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ExportRecord, MergedService } from '@causeway/catalog';
import {
  initialCatalogState,
  plan,
  type CatalogEffect,
  type CatalogEvent,
  type CatalogState,
} from './catalog-plan.ts';

const T0 = Date.parse('2026-12-02T06:00:00Z');

const record = (name: string, revision = 1, extra: Partial<ExportRecord> = {}): ExportRecord => ({
  cluster: 'east',
  namespace: 'shop',
  name,
  type: 'ClusterSetIP',
  ports: [{ port: 80, protocol: 'TCP' }],
  sessionAffinity: 'None',
  exportCreatedAt: '2026-12-01T00:00:00Z',
  revision,
  gatewayAddresses: ['127.0.0.1:15443'],
  readyEndpoints: 1,
  identities: [],
  ...extra,
});

const tick = (
  chain: string,
  extra: Partial<Extract<CatalogEvent, { type: 'HeartbeatTick' }>> = {},
): CatalogEvent => ({
  type: 'HeartbeatTick',
  chain,
  liveness: { stale: [], withdrawn: new Map() },
  ownLive: [],
  unlisted: [],
  ...extra,
});

/** Plans each event in turn (one ms apart) and returns every effect. */
function run(state: CatalogState, ...events: CatalogEvent[]): CatalogEffect[] {
  return events.flatMap((event, i) => plan(state, event, T0 + i));
}

const ofType = <K extends CatalogEffect['type']>(effects: readonly CatalogEffect[], type: K) =>
  effects.filter((effect): effect is Extract<CatalogEffect, { type: K }> => effect.type === type);

/** A state attached with chain `A`. */
function attached(): CatalogState {
  const state = initialCatalogState('east');
  run(state, { type: 'Attached', chain: 'A' });
  return state;
}

test('an export before NATS is Pending; attaching puts it, and its acknowledgement makes it Ready', () => {
  const state = initialCatalogState('east');
  const cart = record('cart');
  const before = run(state, { type: 'ExportDerived', record: cart });
  assert.deepEqual(
    ofType(before, 'WriteCondition').map((e) => e.condition.reason),
    ['Pending'],
  );
  assert.equal(ofType(before, 'PutRecord').length, 0);
  assert.equal(ofType(before, 'NotifyProxies').length, 1);

  const onAttach = run(state, { type: 'Attached', chain: 'A' });
  assert.deepEqual(ofType(onAttach, 'PutRecord'), [{ type: 'PutRecord', key: 'shop/cart', record: cart }]);
  assert.deepEqual(ofType(onAttach, 'ScheduleRepair'), [{ type: 'ScheduleRepair', soon: false }]);

  const acked = run(state, { type: 'RecordPut', key: 'shop/cart', record: cart });
  assert.deepEqual(
    ofType(acked, 'WriteCondition').map((e) => [e.key, e.condition.status, e.condition.reason]),
    [['shop/cart', 'True', 'Exported']],
  );
  assert.equal(state.unpublished.size, 0);
});

test('records are put one at a time; a failed put waits for the next tick and is tried again', () => {
  const state = attached();
  const puts = ofType(
    run(
      state,
      { type: 'ExportDerived', record: record('cart') },
      { type: 'ExportDerived', record: record('ledger') },
    ),
    'PutRecord',
  );
  assert.deepEqual(
    puts.map((e) => e.key),
    ['shop/cart'],
  );
  const failed = run(state, { type: 'RecordPutFailed', key: 'shop/cart', error: new Error('timeout') });
  assert.deepEqual(failed, [{ type: 'Report', error: new Error('timeout') }]);
  const again = run(state, tick('A'));
  assert.deepEqual(
    ofType(again, 'PutRecord').map((e) => e.key),
    ['shop/cart'],
  );
  const next = run(state, { type: 'RecordPut', key: 'shop/cart', record: state.published.get('shop/cart')! });
  assert.deepEqual(
    ofType(next, 'PutRecord').map((e) => e.key),
    ['shop/ledger'],
  );
});

test('a record replaced while its put was in flight stays unpublished and the newer one is put', () => {
  const state = attached();
  const first = record('cart', 1);
  const second = record('cart', 2);
  run(state, { type: 'ExportDerived', record: first });
  const replaced = run(state, { type: 'ExportDerived', record: second });
  assert.equal(ofType(replaced, 'PutRecord').length, 0, 'two puts of one key in flight');
  const acked = run(state, { type: 'RecordPut', key: 'shop/cart', record: first });
  assert.equal(ofType(acked, 'WriteCondition').length, 0, 'the old revision was called Ready');
  assert.deepEqual(ofType(acked, 'PutRecord'), [{ type: 'PutRecord', key: 'shop/cart', record: second }]);
  assert.ok(state.unpublished.has('shop/cart'));
});

test('an export removed becomes a tombstone with a newer revision; an unknown one changes nothing', () => {
  const state = attached();
  run(state, { type: 'ExportDerived', record: record('cart', T0 + 5_000) });
  assert.deepEqual(run(state, { type: 'ExportRemoved', namespace: 'shop', name: 'ledger' }), []);
  run(state, { type: 'RecordPut', key: 'shop/cart', record: state.published.get('shop/cart')! });
  const removed = plan(state, { type: 'ExportRemoved', namespace: 'shop', name: 'cart' }, T0);
  const [put] = ofType(removed, 'PutRecord');
  assert.equal(put?.record.tombstone, true);
  assert.equal(put?.record.revision, T0 + 5_001, 'not newer than the record it replaces');
  assert.equal(
    ofType(removed, 'WriteCondition').length,
    0,
    'a tombstone is given a Pending or Ready condition',
  );
});

test('a renewed identity announces the new chain first, then puts every record again with a newer revision', () => {
  const state = attached();
  run(state, { type: 'ExportDerived', record: record('cart', 1) });
  run(state, { type: 'RecordPut', key: 'shop/cart', record: state.published.get('shop/cart')! });
  const renewed = run(state, { type: 'IdentityRenewed', chain: 'B' });
  assert.deepEqual(renewed, [{ type: 'PutSigner', chain: 'B' }]);
  // A tick meanwhile does not announce it twice.
  assert.equal(ofType(run(state, tick('B')), 'PutSigner').length, 0);
  const announced = plan(state, { type: 'SignerPut', chain: 'B' }, T0 + 60_000);
  const [put] = ofType(announced, 'PutRecord');
  assert.equal(put?.key, 'shop/cart');
  assert.equal(put?.record.revision, T0 + 60_000);
  assert.equal(state.announcedChain, 'B');
});

test('a failed announcement is retried by the next tick, and still re-signs the records', () => {
  const state = attached();
  run(state, { type: 'ExportDerived', record: record('cart', 1) });
  run(state, { type: 'RecordPut', key: 'shop/cart', record: state.published.get('shop/cart')! });
  run(
    state,
    { type: 'IdentityRenewed', chain: 'B' },
    { type: 'SignerPutFailed', chain: 'B', error: new Error('x') },
  );
  assert.deepEqual(ofType(run(state, tick('B')), 'PutSigner'), [{ type: 'PutSigner', chain: 'B' }]);
  assert.equal(ofType(run(state, { type: 'SignerPut', chain: 'B' }), 'PutRecord').length, 1);
});

test('the heartbeat sequence only grows, even when the clock steps back', () => {
  const state = attached();
  const first = ofType(plan(state, tick('A'), T0), 'PutHeartbeat')[0]!;
  const second = ofType(plan(state, tick('A'), T0 - 60_000), 'PutHeartbeat')[0]!;
  assert.ok(second.sequence > first.sequence);
  assert.equal(first.time, new Date(T0).toISOString());
});

test('no heartbeat, signer or put before NATS is attached; liveness changes still re-plan the imports', () => {
  const state = initialCatalogState('east');
  const effects = run(state, tick('A'));
  assert.deepEqual(
    effects.map((e) => e.type),
    ['RecompileRoutes', 'WriteImports'],
  );
  // The same liveness again: no re-plan.
  assert.deepEqual(
    run(state, tick('A')).map((e) => e.type),
    ['RecompileRoutes'],
  );
  const stale = run(state, tick('A', { liveness: { stale: [['west', true]], withdrawn: new Map() } }));
  assert.equal(ofType(stale, 'WriteImports').length, 1);
  const withdrawn = run(
    state,
    tick('A', {
      liveness: { stale: [['west', true]], withdrawn: new Map([['shop/cart', new Set(['west'])]]) },
    }),
  );
  assert.equal(ofType(withdrawn, 'WriteImports').length, 1);
});

test('a record of this cluster that no ServiceExport backs gets a tombstone, once the exports are all known', () => {
  const state = attached();
  const cart = record('cart');
  run(state, { type: 'ExportDerived', record: cart }, { type: 'RecordPut', key: 'shop/cart', record: cart });
  const orphan = record('old', 7);
  // Lists incomplete: nothing is swept.
  assert.equal(ofType(run(state, tick('A', { ownLive: undefined })), 'PutRecord').length, 0);
  const swept = run(
    state,
    tick('A', { ownLive: [record('cart'), orphan, record('west-only', 1, { cluster: 'west' })] }),
  );
  assert.deepEqual(
    ofType(swept, 'PutRecord').map((e) => [e.key, e.record.tombstone]),
    [['shop/old', true]],
  );
});

test('held exports are reported at most every 30 s', () => {
  const state = initialCatalogState('east');
  const reports = [0, 10_000, 31_000].map(
    (at) => ofType(plan(state, tick('A', { unlisted: ['EndpointSlice'] }), T0 + at), 'Report').length,
  );
  assert.deepEqual(reports, [1, 0, 1]);
});

test('Conflict conditions are written for own exports only, and again only when they change', () => {
  const state = attached();
  run(state, { type: 'ExportDerived', record: record('cart') });
  const merged = (
    conflicts: MergedService['verdicts'][number]['conflicts'],
  ): ReadonlyMap<string, MergedService> =>
    new Map([
      [
        'shop/cart',
        {
          namespace: 'shop',
          name: 'cart',
          type: 'ClusterSetIP',
          ports: [],
          sessionAffinity: 'None',
          clusters: ['east', 'west'],
          verdicts: [
            { cluster: 'east', included: true, conflicts },
            { cluster: 'west', included: true, conflicts: [] },
          ],
        },
      ],
      [
        'shop/other',
        {
          namespace: 'shop',
          name: 'other',
          type: 'ClusterSetIP',
          ports: [],
          sessionAffinity: 'None',
          clusters: ['west'],
          verdicts: [{ cluster: 'west', included: true, conflicts: [] }],
        },
      ],
    ]);
  const written = (effects: CatalogEffect[]) =>
    ofType(effects, 'WriteCondition').map((e) => [e.key, e.condition.type, e.condition.status]);
  assert.deepEqual(written(run(state, { type: 'CatalogApplied', catalog: merged([]) })), [
    ['shop/cart', 'Conflict', 'False'],
  ]);
  assert.deepEqual(written(run(state, { type: 'CatalogApplied', catalog: merged([]) })), []);
  const conflict = merged([{ reason: 'PortConflict', message: 'port 80 differs' }]);
  assert.deepEqual(written(run(state, { type: 'CatalogApplied', catalog: conflict })), [
    ['shop/cart', 'Conflict', 'True'],
  ]);
  // The write failed: the next catalog writes it again.
  run(state, {
    type: 'ConditionWriteFailed',
    key: 'shop/cart',
    condition: state.conflictWritten.get('shop/cart')!,
  });
  assert.deepEqual(written(run(state, { type: 'CatalogApplied', catalog: conflict })), [
    ['shop/cart', 'Conflict', 'True'],
  ]);
});

test("a removed key of this cluster schedules a repair soon; other clusters' keys do not", () => {
  const state = attached();
  assert.deepEqual(run(state, { type: 'KeyRemoved', key: 'export.east.shop.cart' }), [
    { type: 'ScheduleRepair', soon: true },
  ]);
  assert.deepEqual(run(state, { type: 'KeyRemoved', key: 'signer.east' }), [
    { type: 'ScheduleRepair', soon: true },
  ]);
  assert.deepEqual(run(state, { type: 'KeyRemoved', key: 'export.west.shop.cart' }), []);
  assert.deepEqual(run(state, { type: 'KeyRemoved', key: 'signer.eastern' }), []);
});

test('a repair reads once at a time, reads again when asked meanwhile, and re-puts what differs', () => {
  const state = attached();
  const cart = record('cart');
  run(state, { type: 'ExportDerived', record: cart }, { type: 'RecordPut', key: 'shop/cart', record: cart });
  const [read] = ofType(run(state, { type: 'RepairTick' }), 'ReadOwnEntries');
  assert.deepEqual(read?.records, [['shop/cart', cart]]);
  assert.deepEqual(run(state, { type: 'LossDetected' }), [
    { type: 'Log', message: 'CatalogLossDetected', fields: { cluster: 'east' } },
  ]);
  const answered = plan(
    state,
    {
      type: 'OwnEntriesRead',
      chain: 'A',
      signerMatches: false,
      differing: [{ key: 'shop/cart', record: cart, missing: true }],
    },
    T0 + 9_000,
  );
  assert.deepEqual(
    answered.map((e) => e.type),
    ['Log', 'PutSigner', 'Log', 'PutRecord', 'ReadOwnEntries'],
  );
  assert.equal(ofType(answered, 'PutRecord')[0]?.record.revision, T0 + 9_000);
  // The second read: the record is on its way again, so it is not compared (nor put twice).
  const second = ofType(answered, 'ReadOwnEntries')[0]!;
  assert.deepEqual(second.records, []);
  const done = run(state, {
    type: 'OwnEntriesRead',
    chain: 'A',
    signerMatches: true,
    differing: [{ key: 'shop/cart', record: cart, missing: true }],
  });
  assert.deepEqual(done, [{ type: 'ScheduleRepair', soon: false }]);
});

test('before NATS is attached, a repair tick reads nothing', () => {
  assert.deepEqual(
    run(initialCatalogState('east'), { type: 'RepairTick' }, { type: 'LossDetected' }).map((e) => e.type),
    ['Log'],
  );
});

test('source changes: policies re-plan imports or tell proxies, route inputs recompile routes', () => {
  const state = initialCatalogState('east');
  const of = (kind: Extract<CatalogEvent, { type: 'SourceChanged' }>['kind']) =>
    plan(state, { type: 'SourceChanged', kind }, T0).map((e) => e.type);
  assert.deepEqual(of('TrafficPolicy'), ['WriteImports']);
  assert.deepEqual(of('AuthorizationPolicy'), ['NotifyProxies']);
  assert.deepEqual(of('Pod'), ['NotifyProxies']);
  assert.deepEqual(of('HTTPRoute'), ['RecompileRoutes']);
  assert.deepEqual(of('ServiceExport'), []);
});
