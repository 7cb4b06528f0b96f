import type { ExportRecord } from './records.ts';

/** What happened to one record offered to the catalog. */
export type ApplyOutcome =
  | { readonly applied: true; readonly change: 'exported' | 'updated' | 'unexported' }
  | { readonly applied: false; readonly reason: 'stale_revision' };

export const recordKey = (record: Pick<ExportRecord, 'cluster' | 'namespace' | 'name'>): string =>
  `${record.cluster}/${record.namespace}/${record.name}`;

/**
 * The federated catalog as this controller knows it: the newest record of every
 * (cluster, namespace, service), tombstones included, so that a replayed older record
 * can never bring an unexported service back. Records are only ever removed by a
 * tombstone, never by silence.
 */
export class CatalogState {
  private readonly records = new Map<string, ExportRecord>();
  /** Live records by `namespace/name`, then by cluster: what one service's merge reads. */
  private readonly byService = new Map<string, Map<string, ExportRecord>>();

  /** Applies a verified record if it is newer than what we hold for its key. */
  apply(record: ExportRecord): ApplyOutcome {
    const key = recordKey(record);
    const current = this.records.get(key);
    if (current && record.revision <= current.revision) return { applied: false, reason: 'stale_revision' };
    this.records.set(key, record);
    const serviceKey = `${record.namespace}/${record.name}`;
    let clusters = this.byService.get(serviceKey);
    if (record.tombstone) {
      clusters?.delete(record.cluster);
      if (clusters?.size === 0) this.byService.delete(serviceKey);
    } else {
      if (!clusters) this.byService.set(serviceKey, (clusters = new Map()));
      clusters.set(record.cluster, record);
    }
    if (record.tombstone) return { applied: true, change: 'unexported' };
    return { applied: true, change: current && !current.tombstone ? 'updated' : 'exported' };
  }

  /** The live records of one service (`namespace/name`). */
  forService(serviceKey: string): ExportRecord[] {
    return [...(this.byService.get(serviceKey)?.values() ?? [])];
  }

  /** Services (`namespace/name`) that were explicitly unexported everywhere they were exported. */
  unexported(): string[] {
    const keys = new Set<string>();
    for (const record of this.records.values())
      if (record.tombstone) keys.add(`${record.namespace}/${record.name}`);
    return [...keys].filter((key) => !this.byService.has(key));
  }

  /** Live (not unexported) records, for the merge. */
  live(): ExportRecord[] {
    return [...this.records.values()].filter((record) => !record.tombstone);
  }

  /** Everything, tombstones included, for persistence. */
  snapshot(): ExportRecord[] {
    return [...this.records.values()];
  }

  static restore(records: readonly ExportRecord[]): CatalogState {
    const state = new CatalogState();
    for (const record of records) state.apply(record);
    return state;
  }
}
