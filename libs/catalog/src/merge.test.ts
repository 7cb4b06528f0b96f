import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parse } from 'yaml';
import { conflictCondition } from './index.ts';
import { mergeCatalog, mergeService } from './merge.ts';
import type { ExportedService } from './types.ts';

const testdata = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../testdata');

interface Golden {
  exports: ExportedService[];
  expect: {
    type: string;
    sessionAffinity: string;
    ports: unknown[];
    clusters: string[];
    verdicts: Record<string, string[]>;
  };
}

describe('MCS merge, golden cases (testdata/*.yaml)', () => {
  for (const file of readdirSync(testdata)
    .filter((name) => name.endsWith('.yaml'))
    .sort()) {
    test(file, () => {
      const golden = parse(readFileSync(path.join(testdata, file), 'utf8')) as Golden;
      const merged = mergeService(golden.exports);
      assert.deepEqual(
        {
          type: merged.type,
          sessionAffinity: merged.sessionAffinity,
          ports: merged.ports,
          clusters: merged.clusters,
          verdicts: Object.fromEntries(
            merged.verdicts.map((v) => [v.cluster, v.conflicts.map((c) => c.reason)]),
          ),
        },
        golden.expect,
      );
    });
  }
});

test('conflict conditions carry the MCS reasons and a message naming the winner', () => {
  const merged = mergeService([
    {
      cluster: 'east',
      namespace: 'shop',
      name: 'cart',
      type: 'ClusterSetIP',
      sessionAffinity: 'None',
      exportCreatedAt: '2026-11-01T10:00:00Z',
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
    },
    {
      cluster: 'west',
      namespace: 'shop',
      name: 'cart',
      type: 'Headless',
      sessionAffinity: 'None',
      exportCreatedAt: '2026-11-02T10:00:00Z',
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
    },
  ]);
  const [east, west] = merged.verdicts;
  assert.deepEqual(conflictCondition(east!), {
    type: 'Conflict',
    status: 'False',
    reason: 'NoConflicts',
    message: 'no conflicts with other clusters',
  });
  const condition = conflictCondition(west!);
  assert.equal(condition.status, 'True');
  assert.equal(condition.reason, 'TypeConflict');
  assert.match(
    condition.message,
    /exported as Headless, but the oldest export \(cluster east, 2026-11-01T10:00:00Z\) is ClusterSetIP/,
  );
});

test('namespace sameness: services are grouped by namespace/name across clusters', () => {
  const base = {
    type: 'ClusterSetIP',
    sessionAffinity: 'None',
    exportCreatedAt: '2026-11-01T10:00:00Z',
    ports: [{ protocol: 'TCP', port: 80 }],
  } as const;
  const catalog = mergeCatalog([
    { ...base, cluster: 'east', namespace: 'shop', name: 'cart' },
    { ...base, cluster: 'west', namespace: 'shop', name: 'cart' },
    { ...base, cluster: 'west', namespace: 'billing', name: 'cart' },
  ]);
  assert.deepEqual([...catalog.keys()], ['billing/cart', 'shop/cart']);
  assert.deepEqual(catalog.get('shop/cart')!.clusters, ['east', 'west']);
  assert.deepEqual(catalog.get('billing/cart')!.clusters, ['west']);
});

// Property tests: for any set of exports of one service.
const exportArbitrary = fc.record({
  cluster: fc.constantFrom('east', 'west', 'north', 'south', 'central'),
  type: fc.constantFrom('ClusterSetIP', 'Headless'),
  sessionAffinity: fc.constantFrom('None', 'ClientIP'),
  exportCreatedAt: fc
    .integer({ min: 0, max: 5 })
    .map((day) => new Date(Date.UTC(2026, 10, 1 + day)).toISOString()),
  ports: fc
    .uniqueArray(
      fc.record({
        name: fc.constantFrom('http', 'grpc', 'admin', 'metrics'),
        protocol: fc.constantFrom('TCP', 'UDP'),
        port: fc.constantFrom(80, 443, 8080, 9090),
      }),
      { maxLength: 4, selector: (p) => `${p.port}/${p.protocol}` },
    )
    // A Service's port names are unique (the API server validates it).
    .filter((ports) => new Set(ports.map((p) => p.name)).size === ports.length),
});
const exportsArbitrary = fc
  .uniqueArray(exportArbitrary, { minLength: 1, maxLength: 5, selector: (e) => e.cluster })
  .map((list) => list.map((e) => ({ ...e, namespace: 'shop', name: 'cart' }) as ExportedService));

test('property: the merge does not depend on the order in which records arrive', () => {
  fc.assert(
    fc.property(exportsArbitrary, fc.func(fc.integer()), (exports, key) => {
      const shuffled = [...exports].sort(
        (a, b) => key(a.cluster) - key(b.cluster) || a.cluster.localeCompare(b.cluster),
      );
      assert.deepEqual(mergeService(shuffled), mergeService(exports));
    }),
  );
});

test('property: the oldest export always backs the import without conflict, and every port comes from an included export', () => {
  fc.assert(
    fc.property(exportsArbitrary, (exports) => {
      const merged = mergeService(exports);
      const oldest = [...exports].sort(
        (a, b) =>
          Date.parse(a.exportCreatedAt) - Date.parse(b.exportCreatedAt) || a.cluster.localeCompare(b.cluster),
      )[0]!;
      const verdict = merged.verdicts.find((v) => v.cluster === oldest.cluster)!;
      assert.equal(verdict.included, true);
      assert.deepEqual(verdict.conflicts, []);
      assert.equal(merged.type, oldest.type);
      for (const port of merged.ports) {
        assert.ok(
          exports.some(
            (e) =>
              merged.clusters.includes(e.cluster) &&
              e.ports.some(
                (p) => p.port === port.port && p.protocol === port.protocol && p.name === port.name,
              ),
          ),
        );
      }
      // Port names stay unique in the import.
      const names = merged.ports.map((p) => p.name).filter(Boolean);
      assert.equal(new Set(names).size, names.length);
    }),
  );
});
