import { durationSetting, listenAddress, z } from '@causeway/config';

const duration = durationSetting;

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9, -)');

/** The `kubeconfig` value that means the pod's own service account (in a Kubernetes cluster). */
export const IN_CLUSTER = 'in-cluster';

/** The controller's YAML settings file. */
export const settingsSchema = z
  .object({
    cluster: dnsLabel,
    trustDomain: z
      .string()
      .regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain (a-z, 0-9, ., -, _)'),
    /** Last-known-good state survives restarts here. */
    stateDir: z.string().min(1),
    nats: z
      .object({
        url: z.string().regex(/^(nats|tls):\/\/\S+$/, 'must be nats://host:port'),
        /** This cluster's NATS user (see `causeway nats-config`) and the file holding its password. */
        user: z.string().min(1).optional(),
        passwordFile: z.string().min(1).optional(),
      })
      .strict()
      .refine((nats) => (nats.user === undefined) === (nats.passwordFile === undefined), {
        message: 'set both user and passwordFile, or neither',
      })
      .optional(),
    trust: z
      .object({
        intermediateCertificate: z.string().min(1),
        intermediateKey: z.string().min(1),
        /** The signed bundle (bundle.json from `causeway trust init`) this cluster starts from. */
        bundle: z.string().min(1),
      })
      .strict(),
    signing: z
      .object({
        address: listenAddress.default('127.0.0.1:15012'),
        workloadTtl: duration('24h'),
        /** File mode: tokens that proxies present, each limited to namespaces and service accounts. */
        joinTokens: z
          .array(
            z
              .object({
                token: z.string().min(16, 'must be at least 16 characters'),
                namespaces: z.array(z.string().min(1)).min(1),
                serviceAccounts: z.array(z.string().min(1)).min(1),
              })
              .strict(),
          )
          .optional(),
        /** Kubernetes mode: service-account tokens are checked with TokenReview through this kubeconfig (or `in-cluster`). */
        kubeconfig: z.string().min(1).optional(),
      })
      .strict()
      .refine((signing) => (signing.joinTokens === undefined) !== (signing.kubeconfig === undefined), {
        message: 'set exactly one of joinTokens (file mode) or kubeconfig (Kubernetes mode)',
      }),
    statusInterval: duration('2s'),
    /**
     * The service accounts (`<namespace>/<name>`) whose proxies may register as ingress
     * gateways: they get the private keys of HTTPS listeners.
     */
    ingressGateways: z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
            'must be <namespace>/<serviceAccount>',
          ),
      )
      .default(['causeway-system/ingress-gateway']),
    /**
     * Catalog sync (needs `nats`): where this cluster's objects come from (its API server, or
     * a folder of YAML files in file mode) and its east-west gateway address(es).
     */
    catalog: z
      .object({
        /** Kubernetes mode: the API server that is watched and that ServiceImports are written to (a kubeconfig, or `in-cluster`). */
        kubeconfig: z.string().min(1).optional(),
        /** File mode: a folder of Service, ServiceExport, route and policy YAML, watched. */
        directory: z.string().min(1).optional(),
        /** File mode: how long a workload's endpoints stay after its sidecar disconnects. */
        workloadGrace: duration('10s'),
        gatewayAddresses: z.array(z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port')).min(1),
        /** How often the heartbeat is published and liveness is re-evaluated. */
        heartbeatInterval: duration('5s'),
        /** A cluster without a heartbeat for this long is reported stale (its endpoints stay). */
        staleAfter: duration('30s'),
      })
      .strict()
      .refine((catalog) => (catalog.kubeconfig === undefined) !== (catalog.directory === undefined), {
        message: 'set exactly one of kubeconfig (Kubernetes mode) or directory (file mode)',
      })
      .optional(),
  })
  .strict()
  .refine((settings) => !settings.catalog || settings.nats, {
    message: 'catalog needs nats.url',
    path: ['catalog'],
  })
  .refine(
    (settings) => !settings.catalog || settings.catalog.staleAfter > settings.catalog.heartbeatInterval,
    {
      message: 'staleAfter must be longer than heartbeatInterval',
      path: ['catalog', 'staleAfter'],
    },
  );

export type Settings = z.output<typeof settingsSchema>;
