import type { ExportedPort, ExportedService, ExportVerdict, MergedService } from './types.ts';

type MutableVerdict = { cluster: string; included: boolean; conflicts: ExportVerdict['conflicts'][number][] };

const portKey = (port: ExportedPort): string => `${port.port}/${port.protocol}`;
const describePort = (port: ExportedPort): string =>
  `${port.name ? `${port.name} ` : ''}${port.port}/${port.protocol}${port.appProtocol ? ` (${port.appProtocol})` : ''}`;

/**
 * Export precedence (KEP-1645): the export with the oldest creationTimestamp first; the
 * cluster name breaks a tie so that every cluster computes the same order.
 */
export function byPrecedence(a: ExportedService, b: ExportedService): number {
  const age = Date.parse(a.exportCreatedAt) - Date.parse(b.exportCreatedAt);
  if (age !== 0) return age;
  return a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;
}

/**
 * Merges the exports of one service (same namespace and name: namespace sameness) from
 * every cluster into its ServiceImport, following the MCS API:
 * - the type and session affinity are the oldest export's; an export of another type gets
 *   `TypeConflict` and does not back the import; another affinity gets
 *   `SessionAffinityConflict` and still does;
 * - ports are the union; when two exports define the same port/protocol differently, or
 *   use one port name for two ports, the older definition wins and the newer export gets
 *   `PortConflict`.
 * The result does not depend on the order of `exports`.
 */
export function mergeService(exports: readonly ExportedService[]): MergedService {
  if (exports.length === 0) throw new Error('mergeService needs at least one export');
  // Creation times parsed once, not in every comparison.
  const times = new Map(exports.map((e) => [e, Date.parse(e.exportCreatedAt)]));
  const ordered = [...exports].sort(
    (a, b) => times.get(a)! - times.get(b)! || (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0),
  );
  const oldest = ordered[0]!;
  const ports = new Map<string, ExportedPort>();
  const portNames = new Map<string, string>();
  const verdicts: MutableVerdict[] = [];

  for (const record of ordered) {
    const verdict: MutableVerdict = { cluster: record.cluster, included: true, conflicts: [] };
    verdicts.push(verdict);
    const winner = `the oldest export (cluster ${oldest.cluster}, ${oldest.exportCreatedAt})`;
    if (record.type !== oldest.type) {
      verdict.included = false;
      verdict.conflicts.push({
        reason: 'TypeConflict',
        message: `exported as ${record.type}, but ${winner} is ${oldest.type}`,
      });
      continue;
    }
    if (record.sessionAffinity !== oldest.sessionAffinity) {
      verdict.conflicts.push({
        reason: 'SessionAffinityConflict',
        message: `session affinity ${record.sessionAffinity}, but ${winner} has ${oldest.sessionAffinity}`,
      });
    }
    const clashes: string[] = [];
    for (const port of [...record.ports].sort(
      (a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol),
    )) {
      const key = portKey(port);
      const existing = ports.get(key);
      if (existing) {
        if (
          (existing.name ?? '') !== (port.name ?? '') ||
          (existing.appProtocol ?? '') !== (port.appProtocol ?? '')
        ) {
          clashes.push(`${describePort(port)} differs from ${describePort(existing)}`);
        }
        continue;
      }
      const owner = port.name ? portNames.get(port.name) : undefined;
      if (owner !== undefined) {
        clashes.push(`port name '${port.name}' is already ${owner}`);
        continue;
      }
      ports.set(key, port);
      if (port.name) portNames.set(port.name, key);
    }
    if (clashes.length > 0) {
      verdict.conflicts.push({
        reason: 'PortConflict',
        message: `${clashes.join('; ')} (older exports win)`,
      });
    }
  }

  return {
    namespace: oldest.namespace,
    name: oldest.name,
    type: oldest.type,
    ports: [...ports.values()].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol)),
    sessionAffinity: oldest.sessionAffinity,
    clusters: verdicts
      .filter((v) => v.included)
      .map((v) => v.cluster)
      .sort(),
    verdicts: verdicts.sort((a, b) => (a.cluster < b.cluster ? -1 : 1)),
  };
}

/** Groups exports by `namespace/name` and merges each service. */
export function mergeCatalog(exports: readonly ExportedService[]): Map<string, MergedService> {
  const groups = new Map<string, ExportedService[]>();
  for (const record of exports) {
    const key = `${record.namespace}/${record.name}`;
    const group = groups.get(key);
    if (group) group.push(record);
    else groups.set(key, [record]);
  }
  const merged = new Map<string, MergedService>();
  for (const key of [...groups.keys()].sort()) merged.set(key, mergeService(groups.get(key)!));
  return merged;
}
