import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordInterner } from './intern.ts';
import { canonicalRecordBytes, type ExportRecord } from './records.ts';

const record = (cluster: string, name: string, extra: Partial<ExportRecord> = {}): ExportRecord =>
  // Parsed from text, as records arrive: no two share a string or an array.
  JSON.parse(
    JSON.stringify({
      cluster,
      namespace: 'shop',
      name,
      type: 'ClusterSetIP',
      sessionAffinity: 'None',
      exportCreatedAt: '2026-11-01T10:00:00Z',
      ports: [{ name: 'http', protocol: 'TCP', port: 80, appProtocol: 'kubernetes.io/h2c' }],
      revision: 7,
      gatewayAddresses: [`${cluster}.example:15443`],
      readyEndpoints: 2,
      identities: [`spiffe://mesh.test/ns/shop/sa/${name}`],
      locality: { region: 'eu', zone: 'eu-1' },
      ...extra,
    }),
  ) as ExportRecord;

test('an interned record keeps every signed field, and nothing else', () => {
  const interner = new RecordInterner();
  for (const original of [
    record('east', 'cart'),
    record('east', 'cart', { tombstone: true }),
    record('east', 'cart', { locality: { zone: 'z' }, ports: [{ protocol: 'UDP', port: 53 }] }),
    record('east', 'cart', { locality: undefined, tombstone: false }),
  ]) {
    const interned = interner.record(original);
    assert.deepEqual(canonicalRecordBytes(interned), canonicalRecordBytes(original));
  }
  const extra = { ...record('east', 'cart'), note: 'x'.repeat(10_000) } as ExportRecord;
  assert.equal('note' in interner.record(extra), false, 'an unsigned field was kept');
});

test('records of one service in many clusters share its strings and lists; shared parts are frozen', () => {
  const interner = new RecordInterner();
  const east = interner.record(record('east', 'cart'));
  const west = interner.record(record('west', 'cart'));
  const again = interner.record(record('east', 'cart'));
  assert.equal(east.ports, west.ports);
  assert.equal(east.identities, west.identities);
  assert.equal(east.locality, west.locality);
  assert.equal(east.gatewayAddresses, again.gatewayAddresses);
  assert.notEqual(east.gatewayAddresses, west.gatewayAddresses);
  assert.ok(Object.isFrozen(east.ports) && Object.isFrozen(east.ports[0]) && Object.isFrozen(east.locality));
  assert.throws(() => (east.identities as string[]).push('spiffe://mesh.test/ns/x/sa/y'));
});

test('a full pool starts afresh: values stay right, and records made before keep theirs', () => {
  const interner = new RecordInterner(3);
  const made = Array.from(
    { length: 20 },
    (_, i) => [i, interner.record(record(`c${i}`, `svc-${i % 4}`))] as const,
  );
  for (const [i, interned] of made) {
    assert.equal(interned.cluster, `c${i}`);
    assert.equal(interned.name, `svc-${i % 4}`);
    assert.deepEqual(interned.gatewayAddresses, [`c${i}.example:15443`]);
    assert.deepEqual(canonicalRecordBytes(interned), canonicalRecordBytes(record(`c${i}`, `svc-${i % 4}`)));
  }
});
