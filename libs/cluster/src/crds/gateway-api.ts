import {
  arr,
  conditions,
  dnsLabel,
  duration,
  enumOf,
  group,
  hostname,
  int,
  kind,
  obj,
  objectName,
  port,
  sectionName,
  str,
  stringMap,
  type CrdDefinition,
  type Schema,
} from './schema.ts';

/** Gateway API group (gateway.networking.k8s.io). */
export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/**
 * `*.k8s.io` groups are protected: the API server refuses their CRDs without this
 * annotation. A value starting with `unapproved` is accepted and says, truthfully, that
 * this schema is Causeway's own rendering of the upstream API, not the approved manifest.
 */
const annotations = {
  'api-approved.kubernetes.io': 'unapproved, Causeway schema for the upstream Gateway API',
};

const controllerName = (): Schema =>
  str({
    minLength: 1,
    maxLength: 253,
    pattern:
      "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9\\/\\-._~%!$&'()*+,;=:]+$",
  });

/** A reference to a parent (usually a Gateway) of a route. */
const parentReference = (): Schema =>
  obj(
    {
      group: group(),
      kind: kind(),
      namespace: dnsLabel(),
      name: objectName(),
      sectionName: sectionName(),
      port: port(),
    },
    ['name'],
  );

const headerName = (): Schema =>
  str({ minLength: 1, maxLength: 256, pattern: "^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$" });

const headerModifier = (): Schema => {
  const header = obj({ name: headerName(), value: str({ minLength: 1, maxLength: 4096 }) }, [
    'name',
    'value',
  ]);
  const list = arr(header, 16, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] });
  return obj({
    set: list,
    add: list,
    remove: arr(str({ minLength: 1, maxLength: 256 }), 16, { 'x-kubernetes-list-type': 'set' }),
  });
};

const backendObjectReference = (extra: Record<string, Schema> = {}): Schema =>
  obj(
    {
      group: group(),
      kind: kind(),
      name: objectName(),
      namespace: dnsLabel(),
      port: port(),
      ...extra,
    },
    ['name'],
  );

const pathModifier = (): Schema =>
  obj(
    {
      type: enumOf(['ReplaceFullPath', 'ReplacePrefixMatch']),
      replaceFullPath: str({ maxLength: 1024 }),
      replacePrefixMatch: str({ maxLength: 1024 }),
    },
    ['type'],
  );

const routeFilter = (types: readonly string[]): Schema =>
  obj(
    {
      type: enumOf(types),
      requestHeaderModifier: headerModifier(),
      responseHeaderModifier: headerModifier(),
      requestMirror: obj(
        {
          backendRef: backendObjectReference(),
          percent: int(0, 100),
          fraction: obj({ numerator: int(0), denominator: int(1, undefined, { default: 100 }) }, [
            'numerator',
          ]),
        },
        ['backendRef'],
      ),
      requestRedirect: obj({
        scheme: enumOf(['http', 'https']),
        hostname: hostname(),
        path: pathModifier(),
        port: port(),
        statusCode: enumOf([301, 302, 303, 307, 308], { default: 302 }),
      }),
      urlRewrite: obj({ hostname: hostname(), path: pathModifier() }),
      extensionRef: obj({ group: group(), kind: kind(), name: objectName() }, ['group', 'kind', 'name']),
    },
    ['type'],
  );

const HTTP_FILTERS = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
  'ExtensionRef',
];
const GRPC_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'];

/** A backendRef: a Service (cluster-local) or, per GEP-1748, a ServiceImport (clusterset). */
const backendRef = (filterTypes: readonly string[]): Schema =>
  backendObjectReference({
    weight: int(0, 1_000_000, { default: 1 }),
    filters: arr(routeFilter(filterTypes), 16),
  });

/** A Gateway API header (or query) match: `Exact` or `RegularExpression`. */
export const valueMatch = (): Schema =>
  obj(
    {
      type: enumOf(['Exact', 'RegularExpression'], { default: 'Exact' }),
      name: headerName(),
      value: str({ minLength: 1, maxLength: 4096 }),
    },
    ['name', 'value'],
  );

const routeStatus = (): Schema =>
  obj({
    parents: arr(
      obj({ parentRef: parentReference(), controllerName: controllerName(), conditions: conditions() }, [
        'parentRef',
        'controllerName',
      ]),
      32,
    ),
  });

const commonRouteSpec = (): Record<string, Schema> => ({
  parentRefs: arr(parentReference(), 32),
  hostnames: arr(hostname(), 16),
});

export const gatewayClass: CrdDefinition = {
  group: GATEWAY_GROUP,
  annotations,
  version: 'v1',
  kind: 'GatewayClass',
  plural: 'gatewayclasses',
  singular: 'gatewayclass',
  shortNames: ['gc'],
  categories: ['gateway-api'],
  scope: 'Cluster',
  spec: obj(
    {
      controllerName: controllerName(),
      parametersRef: obj({ group: group(), kind: kind(), name: objectName(), namespace: dnsLabel() }, [
        'group',
        'kind',
        'name',
      ]),
      description: str({ maxLength: 64 }),
    },
    ['controllerName'],
  ),
  status: obj({ conditions: conditions() }),
  requiredSpec: true,
  printerColumns: [
    { name: 'Controller', type: 'string', jsonPath: '.spec.controllerName' },
    { name: 'Accepted', type: 'string', jsonPath: '.status.conditions[?(@.type=="Accepted")].status' },
  ],
};

const listener = (): Schema =>
  obj(
    {
      name: sectionName(),
      hostname: hostname(),
      port: port(),
      protocol: str({
        minLength: 1,
        maxLength: 255,
        pattern:
          '^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9]+$',
      }),
      tls: obj({
        mode: enumOf(['Terminate', 'Passthrough'], { default: 'Terminate' }),
        certificateRefs: arr(
          obj({ group: group(), kind: kind(), name: objectName(), namespace: dnsLabel() }, ['name']),
          64,
        ),
        options: stringMap({ maxProperties: 16 }),
      }),
      allowedRoutes: obj({
        namespaces: obj({
          from: enumOf(['All', 'Selector', 'Same'], { default: 'Same' }),
          selector: {
            type: 'object',
            'x-kubernetes-map-type': 'atomic',
            'x-kubernetes-preserve-unknown-fields': true,
          },
        }),
        kinds: arr(obj({ group: group(), kind: kind() }, ['kind']), 8),
      }),
    },
    ['name', 'port', 'protocol'],
  );

export const gateway: CrdDefinition = {
  group: GATEWAY_GROUP,
  annotations,
  version: 'v1',
  kind: 'Gateway',
  plural: 'gateways',
  singular: 'gateway',
  shortNames: ['gtw'],
  categories: ['gateway-api'],
  scope: 'Namespaced',
  spec: obj(
    {
      gatewayClassName: objectName(),
      listeners: arr(listener(), 64, {
        minItems: 1,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
      addresses: arr(
        obj({ type: str({ default: 'IPAddress' }), value: str({ minLength: 1, maxLength: 253 }) }, ['value']),
        16,
      ),
    },
    ['gatewayClassName', 'listeners'],
  ),
  status: obj({
    addresses: arr(obj({ type: str(), value: str({ minLength: 1, maxLength: 253 }) }, ['value']), 16),
    conditions: conditions(),
    listeners: arr(
      obj(
        {
          name: sectionName(),
          supportedKinds: arr(obj({ group: group(), kind: kind() }, ['kind']), 8),
          attachedRoutes: { type: 'integer', format: 'int32' },
          conditions: conditions(),
        },
        ['name', 'supportedKinds', 'attachedRoutes', 'conditions'],
      ),
      64,
    ),
  }),
  requiredSpec: true,
  printerColumns: [
    { name: 'Class', type: 'string', jsonPath: '.spec.gatewayClassName' },
    { name: 'Address', type: 'string', jsonPath: '.status.addresses[*].value' },
    { name: 'Programmed', type: 'string', jsonPath: '.status.conditions[?(@.type=="Programmed")].status' },
  ],
};

const httpRouteMatch = (): Schema =>
  obj({
    path: obj(
      {
        type: enumOf(['Exact', 'PathPrefix', 'RegularExpression'], { default: 'PathPrefix' }),
        value: str({ maxLength: 1024, default: '/' }),
      },
      [],
      { default: { type: 'PathPrefix', value: '/' } },
    ),
    headers: arr(valueMatch(), 16, {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    }),
    queryParams: arr(valueMatch(), 16, {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    }),
    method: enumOf(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']),
  });

export const httpRoute: CrdDefinition = {
  group: GATEWAY_GROUP,
  annotations,
  version: 'v1',
  kind: 'HTTPRoute',
  plural: 'httproutes',
  singular: 'httproute',
  categories: ['gateway-api'],
  scope: 'Namespaced',
  spec: obj({
    ...commonRouteSpec(),
    rules: arr(
      obj({
        name: sectionName(),
        matches: arr(httpRouteMatch(), 64, { default: [{ path: { type: 'PathPrefix', value: '/' } }] }),
        filters: arr(routeFilter(HTTP_FILTERS), 16),
        backendRefs: arr(backendRef(HTTP_FILTERS), 16),
        timeouts: obj({ request: duration(), backendRequest: duration() }),
      }),
      16,
      { default: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }] },
    ),
  }),
  status: routeStatus(),
  requiredSpec: true,
  printerColumns: [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }],
};

export const grpcRoute: CrdDefinition = {
  group: GATEWAY_GROUP,
  annotations,
  version: 'v1',
  kind: 'GRPCRoute',
  plural: 'grpcroutes',
  singular: 'grpcroute',
  categories: ['gateway-api'],
  scope: 'Namespaced',
  spec: obj({
    ...commonRouteSpec(),
    rules: arr(
      obj({
        name: sectionName(),
        matches: arr(
          obj({
            method: obj({
              type: enumOf(['Exact', 'RegularExpression'], { default: 'Exact' }),
              service: str({ maxLength: 1024 }),
              method: str({ maxLength: 1024 }),
            }),
            headers: arr(valueMatch(), 16, {
              'x-kubernetes-list-type': 'map',
              'x-kubernetes-list-map-keys': ['name'],
            }),
          }),
          64,
        ),
        filters: arr(routeFilter(GRPC_FILTERS), 16),
        backendRefs: arr(backendRef(GRPC_FILTERS), 16),
      }),
      16,
    ),
  }),
  status: routeStatus(),
  requiredSpec: true,
  printerColumns: [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }],
};

export const referenceGrant: CrdDefinition = {
  group: GATEWAY_GROUP,
  annotations,
  version: 'v1beta1',
  kind: 'ReferenceGrant',
  plural: 'referencegrants',
  singular: 'referencegrant',
  shortNames: ['refgrant'],
  categories: ['gateway-api'],
  scope: 'Namespaced',
  spec: obj(
    {
      from: arr(
        obj({ group: group(), kind: kind(), namespace: dnsLabel() }, ['group', 'kind', 'namespace']),
        16,
        { minItems: 1 },
      ),
      to: arr(obj({ group: group(), kind: kind(), name: objectName() }, ['group', 'kind']), 16, {
        minItems: 1,
      }),
    },
    ['from', 'to'],
  ),
  requiredSpec: true,
};

export const gatewayApiCrds: readonly CrdDefinition[] = [
  gatewayClass,
  gateway,
  httpRoute,
  grpcRoute,
  referenceGrant,
];
