import type { ClustersetService } from '@causeway/catalog';
import { z } from '@causeway/config';
import type { CompiledGateway } from './gateways.ts';
import type { CompiledRoute, PolicyView } from './routes.ts';

/** The kinds of proxy a controller serves; each receives only what it needs. */
export const PROXY_KINDS = ['sidecar', 'east-west-gateway', 'ingress-gateway'] as const;
export type ProxyKind = (typeof PROXY_KINDS)[number];

/**
 * File mode: the workload a sidecar stands beside, registered when it connects. Its
 * namespace and service account are those of the sidecar's certificate; Services in the
 * controller's folder select it by its labels, as they select pods in Kubernetes.
 */
export interface Workload {
  /** Unique in its namespace (a pod name). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The IP address peers connect to. */
  readonly address: string;
  /**
   * Each port peers reach the workload on (the sidecar's inbound listener), with the app's
   * own port behind it, which a Service's numeric `targetPort` names (default: `port`).
   */
  readonly ports: ReadonlyArray<{ readonly name?: string; readonly port: number; readonly appPort?: number }>;
  readonly zone?: string;
  /** False while the app is not ready to serve (default true). */
  readonly ready?: boolean;
}

/** What a proxy says about itself when it connects. */
export interface Registration {
  /** Unique per proxy in its cluster, e.g. `sidecar~shop~cart-0`. */
  readonly proxy: string;
  readonly kind: ProxyKind;
  /** The version the proxy already has, if any (after a reconnect). */
  readonly version?: number;
  /** File mode, sidecars only: the workload beside it. */
  readonly workload?: Workload;
}

/** Everything a proxy is configured from, compiled from the controller's state. */
export interface DiscoveryInput {
  readonly cluster: string;
  readonly trustDomain: string;
  readonly trust: {
    readonly bundleVersion: number;
    readonly bundleHash: string;
    readonly roots: readonly string[];
  };
  readonly services: readonly ClustersetService[];
  readonly routes: readonly CompiledRoute[];
  readonly policies: readonly PolicyView[];
  /** Gateways of Causeway's class, with their served listeners. */
  readonly gateways?: readonly CompiledGateway[];
}

/** One versioned config snapshot for one proxy: complete, never partial. */
export interface ProxyConfig {
  readonly cluster: string;
  readonly trustDomain: string;
  readonly proxy: string;
  readonly kind: ProxyKind;
  readonly trust: DiscoveryInput['trust'];
  readonly services: readonly ClustersetService[];
  /** HTTPRoutes/GRPCRoutes attached to what this proxy serves (mesh parents or Gateways). */
  readonly routes: readonly CompiledRoute[];
  /** Causeway policies (TrafficPolicy, AuthorizationPolicy, RateLimitPolicy). */
  readonly policies: readonly PolicyView[];
  /** Ingress gateways only: the Gateways of Causeway's class and their listeners. */
  readonly gateways: readonly CompiledGateway[];
}

/**
 * Compiles the snapshot for one proxy. A sidecar or an ingress gateway gets every
 * clusterset service with its backends (and this cluster's other Services, for
 * cluster-local names); an east-west gateway gets only this cluster's own
 * exports, with their local endpoints (what its SNI routing maps to). A sidecar gets the
 * mesh routes (parents that are Services or ServiceImports), an ingress gateway the routes
 * attached to Gateways; both get the policies.
 */
export function compileSnapshot(input: DiscoveryInput, registration: Registration): ProxyConfig {
  const services =
    registration.kind === 'east-west-gateway'
      ? input.services.flatMap((service) => {
          // Only exports: a Service the clusterset does not serve from here is not reachable
          // from other clusters.
          if (service.scope === 'cluster') return [];
          const local = service.backends.filter((backend) => backend.kind === 'local');
          return local.length > 0 ? [{ ...service, backends: local }] : [];
        })
      : input.services;
  return {
    cluster: input.cluster,
    trustDomain: input.trustDomain,
    proxy: registration.proxy,
    kind: registration.kind,
    trust: input.trust,
    services,
    routes: input.routes.filter((route) =>
      registration.kind === 'sidecar'
        ? route.parents.some((parent) => parent.kind !== 'Gateway')
        : registration.kind === 'ingress-gateway'
          ? route.parents.some((parent) => parent.kind === 'Gateway')
          : false,
    ),
    policies: registration.kind === 'east-west-gateway' ? [] : input.policies,
    gateways: registration.kind === 'ingress-gateway' ? (input.gateways ?? []) : [],
  };
}

const port = z.number().int().min(0).max(65_535);
const endpoint = z.object({
  address: z.string().min(1),
  ready: z.boolean(),
  ports: z.array(z.object({ name: z.string(), port, protocol: z.string() })),
  zone: z.string().optional(),
});
const backend = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('local'),
    cluster: z.string().min(1),
    endpoints: z.array(endpoint),
    identities: z.array(z.string()),
  }),
  z.object({
    kind: z.literal('remote'),
    cluster: z.string().min(1),
    gatewayAddresses: z.array(z.string().min(1)),
    identities: z.array(z.string()),
    readyEndpoints: z.number().int().min(0),
    locality: z.object({ region: z.string().optional(), zone: z.string().optional() }).optional(),
    stale: z.boolean(),
  }),
]);

/** What a proxy checks before it uses a snapshot: every field, so nothing partial is served. */
export const proxyConfigSchema = z.object({
  cluster: z.string().min(1),
  trustDomain: z.string().min(1),
  proxy: z.string().min(1),
  kind: z.enum(PROXY_KINDS),
  trust: z.object({
    bundleVersion: z.number().int(),
    bundleHash: z.string().min(1),
    roots: z.array(z.string().min(1)).min(1),
  }),
  services: z.array(
    z.object({
      namespace: z.string().min(1),
      name: z.string().min(1),
      hostname: z.string().min(1),
      scope: z.literal('cluster').optional(),
      type: z.enum(['ClusterSetIP', 'Headless']),
      ports: z.array(
        z.object({
          name: z.string().optional(),
          protocol: z.enum(['TCP', 'UDP', 'SCTP']),
          port,
          appProtocol: z.string().optional(),
        }),
      ),
      backends: z.array(backend),
      withdrawn: z.array(z.string()),
    }),
  ),
  routes: z.array(
    z.object({
      kind: z.enum(['HTTPRoute', 'GRPCRoute']),
      namespace: z.string().min(1),
      name: z.string().min(1),
      created: z.string().optional(),
      hostnames: z.array(z.string()),
      parents: z.array(
        z
          .object({
            kind: z.enum(['Gateway', 'Service', 'ServiceImport']),
            namespace: z.string(),
            name: z.string(),
          })
          .passthrough(),
      ),
      rules: z.array(
        z
          .object({
            matches: z.array(z.unknown()),
            filters: z.array(z.unknown()),
            backends: z.array(
              z
                .object({
                  kind: z.enum(['Service', 'ServiceImport']),
                  namespace: z.string(),
                  name: z.string(),
                  port: port.optional(),
                  weight: z.number().int().min(0),
                  resolved: z.boolean(),
                  filters: z.array(z.unknown()),
                })
                .passthrough(),
            ),
          })
          .passthrough(),
      ),
    }),
  ),
  policies: z.array(
    z.object({
      kind: z.enum(['TrafficPolicy', 'AuthorizationPolicy', 'RateLimitPolicy']),
      namespace: z.string().min(1),
      name: z.string().min(1),
      spec: z.unknown(),
    }),
  ),
  gateways: z
    .array(
      z.object({
        namespace: z.string().min(1),
        name: z.string().min(1),
        listeners: z.array(
          z.object({
            name: z.string().min(1),
            port,
            protocol: z.enum(['HTTP', 'HTTPS']),
            certificates: z
              .array(z.object({ certificate: z.string().min(1), privateKey: z.string().min(1) }))
              .optional(),
            hostname: z.string().min(1).optional(),
            kinds: z.array(z.enum(['HTTPRoute', 'GRPCRoute'])),
            namespaces: z.enum(['Same', 'All']),
          }),
        ),
      }),
    )
    // (A controller from before ingress gateways sends none.)
    .default([]),
});

/** One line of the discovery stream. */
export const snapshotMessageSchema = z.object({
  version: z.number().int().positive(),
  config: proxyConfigSchema,
});

export type SnapshotMessage = { readonly version: number; readonly config: ProxyConfig };
