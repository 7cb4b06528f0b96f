import type { ExportedPort } from './types.ts';
import type { ExportRecord } from './records.ts';

/** Distinct values a pool keeps before it starts afresh (what odd records can pin is bounded). */
export const INTERN_POOL_LIMIT = 50_000;

/** A map of values to their one shared copy, emptied when it reaches its limit. */
class Pool<T> {
  private readonly values = new Map<string, T>();
  constructor(private readonly limit: number) {}

  get(key: string, make: () => T): T {
    const found = this.values.get(key);
    if (found !== undefined) return found;
    // Records already made keep the values they share; new ones share anew.
    if (this.values.size >= this.limit) this.values.clear();
    const value = make();
    this.values.set(key, value);
    return value;
  }
}

/**
 * Verified records as the catalog keeps them: a fresh object with exactly the signed fields
 * (anything else a publisher added is dropped), whose strings, port lists, address and
 * identity lists and localities are shared with every other record that repeats them.
 * Across clusters most of a service's record repeats (names, ports, identities); within a
 * cluster, its addresses and locality. Shared lists and objects are frozen.
 */
export class RecordInterner {
  private readonly strings: Pool<string>;
  private readonly lists: Pool<readonly string[]>;
  private readonly ports: Pool<readonly ExportedPort[]>;
  private readonly localities: Pool<NonNullable<ExportRecord['locality']>>;

  constructor(limit = INTERN_POOL_LIMIT) {
    this.strings = new Pool(limit);
    this.lists = new Pool(limit);
    this.ports = new Pool(limit);
    this.localities = new Pool(limit);
  }

  string(value: string): string {
    return this.strings.get(value, () => value);
  }

  record(record: ExportRecord): ExportRecord {
    const shared: {
      -readonly [K in keyof ExportRecord]: ExportRecord[K];
    } = {
      cluster: this.string(record.cluster),
      namespace: this.string(record.namespace),
      name: this.string(record.name),
      type: record.type,
      ports: this.portList(record.ports),
      sessionAffinity: record.sessionAffinity,
      exportCreatedAt: this.string(record.exportCreatedAt),
      revision: record.revision,
      gatewayAddresses: this.stringList(record.gatewayAddresses),
      readyEndpoints: record.readyEndpoints,
      identities: this.stringList(record.identities),
    };
    if (record.tombstone === true) shared.tombstone = true;
    if (record.locality) shared.locality = this.locality(record.locality);
    return shared;
  }

  private stringList(list: readonly string[]): readonly string[] {
    return this.lists.get(JSON.stringify(list), () => Object.freeze(list.map((item) => this.string(item))));
  }

  private portList(ports: readonly ExportedPort[]): readonly ExportedPort[] {
    const key = JSON.stringify(ports.map((p) => [p.name, p.protocol, p.port, p.appProtocol]));
    return this.ports.get(key, () =>
      Object.freeze(
        ports.map((p) =>
          Object.freeze({
            ...(p.name !== undefined ? { name: this.string(p.name) } : {}),
            protocol: p.protocol,
            port: p.port,
            ...(p.appProtocol !== undefined ? { appProtocol: this.string(p.appProtocol) } : {}),
          }),
        ),
      ),
    );
  }

  private locality(locality: NonNullable<ExportRecord['locality']>): NonNullable<ExportRecord['locality']> {
    const { region, zone } = locality;
    return this.localities.get(JSON.stringify([region, zone]), () =>
      Object.freeze({
        ...(region !== undefined ? { region: this.string(region) } : {}),
        ...(zone !== undefined ? { zone: this.string(zone) } : {}),
      }),
    );
  }
}
