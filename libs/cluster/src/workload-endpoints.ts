import { isIP } from 'node:net';
import type { Workload } from '@causeway/discovery';
import type { SourceObject } from './source.ts';

/** A workload registered by its sidecar, under the sidecar's namespace and service account. */
export interface RegisteredWorkload {
  readonly proxy: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workload: Workload;
}

interface ServiceObject extends SourceObject {
  spec?: {
    type?: string;
    selector?: Record<string, string>;
    ports?: Array<{ name?: string; protocol?: string; port: number; targetPort?: number | string }>;
  };
}

/**
 * What Kubernetes would hold for registered workloads: a Pod per workload (its labels and
 * service account) and, per Service whose selector matches a workload, an EndpointSlice
 * with that workload's address and the ports the Service's `targetPort`s name. A workload
 * without a port a Service needs is left out of that Service, as an unresolvable named
 * port is in Kubernetes.
 */
export function workloadObjects(
  services: readonly SourceObject[],
  workloads: readonly RegisteredWorkload[],
): { pods: SourceObject[]; slices: SourceObject[] } {
  const pods = workloads.map(({ namespace, serviceAccount, workload }) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: workload.name, namespace, labels: { ...workload.labels } },
    spec: { serviceAccountName: serviceAccount },
  }));
  const slices: SourceObject[] = [];
  for (const service of services as readonly ServiceObject[]) {
    const selector = Object.entries(service.spec?.selector ?? {});
    if (selector.length === 0 || service.spec?.type === 'ExternalName') continue;
    const { namespace, name } = service.metadata;
    for (const registered of workloads) {
      const { workload } = registered;
      if (registered.namespace !== namespace) continue;
      if (!selector.every(([key, value]) => workload.labels[key] === value)) continue;
      const ports = [];
      for (const port of service.spec?.ports ?? []) {
        const target = port.targetPort ?? port.port;
        const match = workload.ports.find((p) =>
          typeof target === 'string' ? p.name === target : (p.appPort ?? p.port) === target,
        );
        if (match) ports.push({ name: port.name ?? '', port: match.port, protocol: port.protocol ?? 'TCP' });
      }
      if (ports.length < (service.spec?.ports ?? []).length) continue;
      slices.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          // Service and workload names have no dots, so this name is never ambiguous.
          name: `${name}.${workload.name}`,
          namespace,
          labels: { 'kubernetes.io/service-name': name },
        },
        addressType: isIP(workload.address) === 6 ? 'IPv6' : 'IPv4',
        ports,
        endpoints: [
          {
            addresses: [workload.address],
            conditions: { ready: workload.ready !== false },
            targetRef: { kind: 'Pod', namespace, name: workload.name },
            ...(workload.zone ? { zone: workload.zone } : {}),
          },
        ],
      } as SourceObject);
    }
  }
  return { pods, slices };
}
