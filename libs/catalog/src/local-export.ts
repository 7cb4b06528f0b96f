import type { ConditionValue } from './conditions.ts';
import type { ExportRecord } from './records.ts';
import type { ExportedPort, PortProtocol } from './types.ts';

/** The fields of a Kubernetes Service that an export reads. */
export interface ServiceView {
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec?: {
    readonly type?: string;
    readonly clusterIP?: string;
    readonly sessionAffinity?: string;
    readonly ports?: ReadonlyArray<{ name?: string; protocol?: string; port: number; appProtocol?: string }>;
  };
}

/** A Service's ports as MCS carries them (an unknown protocol is TCP). */
export function servicePorts(service: ServiceView): ExportedPort[] {
  return (service.spec?.ports ?? []).map((port) => ({
    ...(port.name ? { name: port.name } : {}),
    protocol: PROTOCOLS.includes(port.protocol as PortProtocol) ? (port.protocol as PortProtocol) : 'TCP',
    port: port.port,
    ...(port.appProtocol ? { appProtocol: port.appProtocol } : {}),
  }));
}

/** The fields of a ServiceExport that an export reads. */
export interface ServiceExportView {
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly creationTimestamp?: string | Date;
  };
}

/** The fields of an EndpointSlice that an export reads. */
export interface EndpointSliceView {
  readonly endpoints?: ReadonlyArray<{
    readonly conditions?: { readonly ready?: boolean };
    readonly addresses: readonly string[];
  }>;
}

/** What this cluster says about one of its ServiceExports. */
export interface LocalExport {
  /** The ServiceExport's `Valid` condition. */
  readonly valid: ConditionValue;
  /** The record to publish when valid. */
  readonly record?: ExportRecord;
}

const PROTOCOLS: readonly PortProtocol[] = ['TCP', 'UDP', 'SCTP'];

/**
 * Derives the export of one ServiceExport from its same-named Service and that Service's
 * EndpointSlices (MCS: no Service -> `NoService`; ExternalName -> `InvalidServiceType`).
 * Only the local cluster's own objects are read here: nothing from another cluster.
 */
export function deriveLocalExport(input: {
  readonly cluster: string;
  readonly serviceExport: ServiceExportView;
  readonly service: ServiceView | undefined;
  readonly slices: readonly EndpointSliceView[];
  readonly gatewayAddresses: readonly string[];
  readonly identities: readonly string[];
  readonly revision: number;
}): LocalExport {
  const { namespace, name } = input.serviceExport.metadata;
  const service = input.service;
  if (!service) {
    return {
      valid: {
        type: 'Valid',
        status: 'False',
        reason: 'NoService',
        message: `Service ${namespace}/${name} not found`,
      },
    };
  }
  const type = service.spec?.type ?? 'ClusterIP';
  if (type === 'ExternalName') {
    return {
      valid: {
        type: 'Valid',
        status: 'False',
        reason: 'InvalidServiceType',
        message: `Service ${namespace}/${name} is of type ExternalName, which cannot be exported`,
      },
    };
  }
  const ports = servicePorts(service);
  const readyEndpoints = input.slices
    .flatMap((slice) => slice.endpoints ?? [])
    .filter((endpoint) => endpoint.conditions?.ready !== false)
    .reduce((count, endpoint) => count + endpoint.addresses.length, 0);
  const created = input.serviceExport.metadata.creationTimestamp;
  return {
    valid: {
      type: 'Valid',
      status: 'True',
      reason: 'Valid',
      message: `Service ${namespace}/${name} is exportable`,
    },
    record: {
      cluster: input.cluster,
      namespace,
      name,
      type: service.spec?.clusterIP === 'None' ? 'Headless' : 'ClusterSetIP',
      sessionAffinity: service.spec?.sessionAffinity === 'ClientIP' ? 'ClientIP' : 'None',
      ports,
      exportCreatedAt: created ? new Date(created).toISOString() : new Date(0).toISOString(),
      revision: input.revision,
      gatewayAddresses: input.gatewayAddresses,
      readyEndpoints,
      identities: input.identities,
    },
  };
}
