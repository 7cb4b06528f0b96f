import {
  arr,
  bool,
  conditions,
  dnsLabel,
  duration,
  enumOf,
  group,
  int,
  kind,
  obj,
  objectName,
  sectionName,
  str,
  type CrdDefinition,
  type Schema,
} from './schema.ts';
import { valueMatch } from './gateway-api.ts';

/** Causeway's policy group. */
export const POLICY_GROUP = 'policy.causeway.dev';

/** Gateway API policy attachment: the objects a policy applies to. */
const targetRefs = (): Schema =>
  arr(
    obj({ group: group(), kind: kind(), name: objectName(), sectionName: sectionName() }, [
      'group',
      'kind',
      'name',
    ]),
    16,
    {
      minItems: 1,
    },
  );

/** Gateway API PolicyStatus: one entry per ancestor the policy was evaluated for. */
const policyStatus = (): Schema =>
  obj({
    ancestors: arr(
      obj(
        {
          ancestorRef: obj(
            {
              group: group(),
              kind: kind(),
              namespace: dnsLabel(),
              name: objectName(),
              sectionName: sectionName(),
            },
            ['name'],
          ),
          controllerName: str({ minLength: 1, maxLength: 253 }),
          conditions: conditions(),
        },
        ['ancestorRef', 'controllerName'],
      ),
      16,
    ),
  });

const percentage = (): Schema => int(0, 100);
const clusterName = (): Schema => dnsLabel();

export const trafficPolicy: CrdDefinition = {
  group: POLICY_GROUP,
  version: 'v1alpha1',
  kind: 'TrafficPolicy',
  plural: 'trafficpolicies',
  singular: 'trafficpolicy',
  shortNames: ['tp'],
  categories: ['causeway'],
  scope: 'Namespaced',
  spec: obj(
    {
      targetRefs: targetRefs(),
      timeouts: obj({ request: duration(), idle: duration(), connect: duration() }),
      retries: obj({
        attempts: int(0, 10),
        perTryTimeout: duration(),
        retryOn: arr(
          enumOf([
            '5xx',
            'gateway-error',
            'reset',
            'connect-failure',
            'retriable-4xx',
            'unavailable',
            'cancelled',
            'deadline-exceeded',
            'resource-exhausted',
          ]),
          16,
        ),
        retriableStatusCodes: arr(int(400, 599), 32),
        allowNonIdempotent: bool(),
        backoff: obj({ baseInterval: duration(), maxInterval: duration() }),
        budget: obj({ percent: percentage(), minRetriesPerSecond: int(0, 100_000) }),
      }),
      loadBalancer: obj({
        type: enumOf(['RoundRobin', 'LeastRequest', 'Random'], { default: 'LeastRequest' }),
      }),
      outlierDetection: obj({
        consecutive5xxErrors: int(1, 1000),
        consecutiveGatewayErrors: int(1, 1000),
        consecutiveLocalOriginFailures: int(1, 1000),
        interval: duration(),
        baseEjectionTime: duration(),
        maxEjectionTime: duration(),
        maxEjectionPercent: percentage(),
      }),
      circuitBreaker: obj({
        maxConnections: int(1),
        maxPendingRequests: int(1),
        maxRequests: int(1),
        maxRetries: int(0),
      }),
      faultInjection: obj({
        delay: obj({ fixedDelay: duration(), percentage: percentage() }, ['fixedDelay']),
        abort: obj({ httpStatus: int(400, 599), grpcStatus: int(1, 16), percentage: percentage() }),
        headers: arr(valueMatch(), 16),
      }),
      locality: obj({
        failover: bool({ default: true }),
        clusterPriority: arr(clusterName(), 64),
      }),
      clusterWeights: arr(
        obj({ cluster: clusterName(), weight: int(0, 1_000_000) }, ['cluster', 'weight']),
        64,
        {
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['cluster'],
        },
      ),
      staleness: obj({
        withdrawAfter: duration(),
      }),
    },
    ['targetRefs'],
  ),
  status: policyStatus(),
  requiredSpec: true,
};

/** A source of a request, in AuthorizationPolicy rules. */
const source = (): Schema =>
  obj({
    principals: arr(str({ minLength: 1, maxLength: 2048 }), 64),
    notPrincipals: arr(str({ minLength: 1, maxLength: 2048 }), 64),
    namespaces: arr(dnsLabel(), 64),
    notNamespaces: arr(dnsLabel(), 64),
    clusters: arr(clusterName(), 64),
    notClusters: arr(clusterName(), 64),
  });

const operation = (): Schema =>
  obj({
    paths: arr(str({ minLength: 1, maxLength: 1024 }), 64),
    notPaths: arr(str({ minLength: 1, maxLength: 1024 }), 64),
    methods: arr(str({ minLength: 1, maxLength: 32 }), 16),
    notMethods: arr(str({ minLength: 1, maxLength: 32 }), 16),
  });

export const authorizationPolicy: CrdDefinition = {
  group: POLICY_GROUP,
  version: 'v1alpha1',
  kind: 'AuthorizationPolicy',
  plural: 'authorizationpolicies',
  singular: 'authorizationpolicy',
  shortNames: ['ap'],
  categories: ['causeway'],
  scope: 'Namespaced',
  spec: obj(
    {
      targetRefs: targetRefs(),
      action: enumOf(['ALLOW', 'DENY']),
      rules: arr(
        obj({
          from: arr(source(), 16),
          to: arr(operation(), 16),
          when: arr(
            obj(
              {
                header: str({ minLength: 1, maxLength: 256 }),
                values: arr(str({ maxLength: 4096 }), 64),
                notValues: arr(str({ maxLength: 4096 }), 64),
              },
              ['header'],
            ),
            16,
          ),
        }),
        64,
      ),
    },
    ['targetRefs', 'action'],
  ),
  status: policyStatus(),
  requiredSpec: true,
  printerColumns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action' }],
};

export const rateLimitPolicy: CrdDefinition = {
  group: POLICY_GROUP,
  version: 'v1alpha1',
  kind: 'RateLimitPolicy',
  plural: 'ratelimitpolicies',
  singular: 'ratelimitpolicy',
  shortNames: ['rlp'],
  categories: ['causeway'],
  scope: 'Namespaced',
  spec: obj(
    {
      targetRefs: targetRefs(),
      limits: arr(
        obj(
          {
            name: dnsLabel(),
            descriptors: arr(
              obj(
                {
                  key: enumOf([
                    'remoteAddress',
                    'header',
                    'path',
                    'method',
                    'sourceCluster',
                    'sourcePrincipal',
                  ]),
                  header: str({ minLength: 1, maxLength: 256 }),
                  value: str({ maxLength: 4096 }),
                },
                ['key'],
              ),
              8,
            ),
            requests: int(1),
            unit: enumOf(['second', 'minute', 'hour', 'day']),
          },
          ['name', 'requests', 'unit'],
        ),
        32,
        { minItems: 1 },
      ),
      failureMode: enumOf(['FailOpen', 'FailClosed'], { default: 'FailOpen' }),
    },
    ['targetRefs', 'limits'],
  ),
  status: policyStatus(),
  requiredSpec: true,
};

export const policyCrds: readonly CrdDefinition[] = [trafficPolicy, authorizationPolicy, rateLimitPolicy];
