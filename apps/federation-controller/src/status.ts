import type { NatsCondition } from '@causeway/nats';
import { dataPlaneMode, type ControllerStatus, type ProxyStatus } from '@causeway/discovery';
import type { CatalogController } from '@causeway/federation';

/** The controller's state for `/debug/catalog` (read by `causeway status` and `explain`). */
export async function catalogStatus(input: {
  cluster: string;
  mode: 'kubernetes' | 'files' | undefined;
  trustDomain: string;
  nats: NatsCondition;
  catalog: CatalogController | undefined;
  proxies: readonly ProxyStatus[];
}): Promise<ControllerStatus> {
  const { catalog } = input;
  const merged = catalog?.sync.durableCatalog();
  return {
    cluster: input.cluster,
    trustDomain: input.trustDomain,
    time: new Date().toISOString(),
    natsConnected: input.nats.connected,
    nats: input.nats,
    catalogRunning: catalog !== undefined,
    ...(input.mode ? { mode: input.mode } : {}),
    peers: catalog?.sync.peerStatus() ?? [],
    exports: (catalog?.localExports() ?? [])
      .map(({ record, published }) => ({
        namespace: record.namespace,
        name: record.name,
        revision: record.revision,
        published,
        tombstone: record.tombstone === true,
        readyEndpoints: record.readyEndpoints,
      }))
      .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)),
    serviceExports: catalog?.serviceExports() ?? [],
    problems: catalog?.problems() ?? [],
    services: (catalog?.clusterset() ?? []).map((service) => ({
      ...service,
      verdicts: merged?.get(`${service.namespace}/${service.name}`)?.verdicts ?? [],
    })),
    refusals: (await catalog?.sync.refusals()) ?? {},
    waitingForSigner: catalog?.sync.waitingForSigner() ?? {},
    dataPlaneModes: catalog
      ? catalog.proxyServices().flatMap((service) =>
          service.ports.map((port) => ({
            namespace: service.namespace,
            name: service.name,
            port: port.port,
            ...dataPlaneMode(
              { routes: catalog.routes(), policies: catalog.policies() },
              service.namespace,
              service.name,
              port.port,
            ),
          })),
        )
      : [],
    trafficPolicies: catalog?.trafficPolicies() ?? [],
    proxies: input.proxies,
  };
}
