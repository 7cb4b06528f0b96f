/** Port protocols a Service (and so a ServiceImport) may use. */
export type PortProtocol = 'TCP' | 'UDP' | 'SCTP';

/** One port of an exported Service, as MCS carries it into the ServiceImport. */
export interface ExportedPort {
  readonly name?: string;
  readonly protocol: PortProtocol;
  readonly port: number;
  readonly appProtocol?: string;
}

/** MCS ServiceImport type: a clusterset VIP, or headless. */
export type ImportType = 'ClusterSetIP' | 'Headless';

/**
 * What one cluster says about one exported service: the properties MCS merges across
 * clusters. Routing data (endpoints, gateways, identities) travels beside it.
 */
export interface ExportedService {
  readonly cluster: string;
  readonly namespace: string;
  readonly name: string;
  readonly type: ImportType;
  readonly ports: readonly ExportedPort[];
  readonly sessionAffinity: 'None' | 'ClientIP';
  /** The ServiceExport's creationTimestamp (RFC 3339): the oldest export wins conflicts. */
  readonly exportCreatedAt: string;
}

/** Conflict reasons, as the MCS API names them on the ServiceExport `Conflict` condition. */
export type ConflictReason = 'TypeConflict' | 'PortConflict' | 'SessionAffinityConflict';

/** One cluster's export after the merge. */
export interface ExportVerdict {
  readonly cluster: string;
  /** False when the export lost a conflict that keeps it out of the import (the type). */
  readonly included: boolean;
  readonly conflicts: ReadonlyArray<{ readonly reason: ConflictReason; readonly message: string }>;
}

/** The clusterset-wide view of one service: the ServiceImport spec and its clusters. */
export interface MergedService {
  readonly namespace: string;
  readonly name: string;
  readonly type: ImportType;
  /** The union of the included exports' ports, sorted by port then protocol. */
  readonly ports: readonly ExportedPort[];
  readonly sessionAffinity: 'None' | 'ClientIP';
  /** Clusters whose endpoints back the import, sorted. */
  readonly clusters: readonly string[];
  /** Every exporting cluster's verdict, sorted by cluster. */
  readonly verdicts: readonly ExportVerdict[];
}
