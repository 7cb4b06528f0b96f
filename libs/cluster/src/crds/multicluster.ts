import { arr, conditions, enumOf, int, obj, port, str, type CrdDefinition } from './schema.ts';

/** MCS API group (KEP-1645, kubernetes-sigs/mcs-api). */
export const MCS_GROUP = 'multicluster.x-k8s.io';

/** ServiceExport: marks the same-named Service for export to the clusterset. */
export const serviceExport: CrdDefinition = {
  group: MCS_GROUP,
  version: 'v1alpha1',
  kind: 'ServiceExport',
  plural: 'serviceexports',
  singular: 'serviceexport',
  shortNames: ['svcex'],
  scope: 'Namespaced',
  // v1alpha1 has no spec fields; the Service of the same name is what is exported.
  spec: obj({}),
  status: obj({ conditions: conditions() }),
  printerColumns: [
    { name: 'Valid', type: 'string', jsonPath: '.status.conditions[?(@.type=="Valid")].status' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Conflict', type: 'string', jsonPath: '.status.conditions[?(@.type=="Conflict")].status' },
  ],
};

const servicePort = obj(
  {
    name: str({ maxLength: 63 }),
    protocol: enumOf(['TCP', 'UDP', 'SCTP'], { default: 'TCP' }),
    appProtocol: str(),
    port: port(),
  },
  ['port'],
);

/** ServiceImport: the clusterset-wide view of an exported service, written by the controller. */
export const serviceImport: CrdDefinition = {
  group: MCS_GROUP,
  version: 'v1alpha1',
  kind: 'ServiceImport',
  plural: 'serviceimports',
  singular: 'serviceimport',
  shortNames: ['svcim'],
  scope: 'Namespaced',
  spec: obj(
    {
      ports: arr(servicePort, undefined, { 'x-kubernetes-list-type': 'atomic' }),
      ips: arr(str({ maxLength: 39 }), 1),
      type: enumOf(['ClusterSetIP', 'Headless']),
      sessionAffinity: enumOf(['ClientIP', 'None']),
      sessionAffinityConfig: obj({
        clientIP: obj({ timeoutSeconds: int(1, 86400) }),
      }),
    },
    ['type'],
  ),
  status: obj({
    clusters: arr(obj({ cluster: str({ minLength: 1 }) }, ['cluster']), undefined, {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['cluster'],
    }),
    conditions: conditions(),
  }),
  requiredSpec: true,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'The type of this ServiceImport' },
    { name: 'IP', type: 'string', jsonPath: '.spec.ips', description: 'The VIP for this ServiceImport' },
  ],
};

export const multiclusterCrds: readonly CrdDefinition[] = [serviceExport, serviceImport];
