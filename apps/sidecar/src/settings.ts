import { durationSetting, listenAddress, z } from '@causeway/config';
import { pathNormalizationSetting, proxyIdentitySettings } from '@causeway/dataplane';

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9, -)');
const port = z.number().int().min(0).max(65_535);

/** The YAML settings file. */
export const settingsSchema = z
  .object({
    ...proxyIdentitySettings,
    /** The workload's identity: `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
    namespace: dnsLabel,
    serviceAccount: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a DNS subdomain'),
    /** File mode: the workload registered with the controller (Services select it by label). */
    workload: z
      .object({
        name: dnsLabel,
        labels: z.record(z.string(), z.string()).default({}),
        /** The IP address peers reach this sidecar's inbound listeners at. */
        address: z.union([z.ipv4(), z.ipv6()]),
        zone: z.string().optional(),
      })
      .strict()
      .optional(),
    /**
     * Kubernetes mode: the pod's IP (from the downward API, `status.podIP`), as its
     * EndpointSlices name it. The inbound listeners serve the Services whose endpoints are
     * this address and a listener's port. File mode takes `workload.address` instead.
     */
    podIp: z.union([z.ipv4(), z.ipv6()]).optional(),
    /** Where the app sends its outbound calls (HTTP/1.1 and HTTP/2 cleartext on one port). */
    outbound: listenAddress.default('127.0.0.1:15001'),
    /** The mTLS listeners peers call, each in front of one app port. */
    inbound: z
      .array(
        z
          .object({
            name: dnsLabel.optional(),
            port: port.default(0),
            appPort: port.refine((value) => value > 0, 'must be a port (1-65535)'),
            appProtocol: z.enum(['http', 'h2c']).default('http'),
          })
          .strict(),
      )
      .default([]),
    inboundHost: z.string().min(1).default('0.0.0.0'),
    /** Where the app listens. */
    appHost: z.string().min(1).default('127.0.0.1'),
    /** A JSON access log line per request, from both sides. */
    accessLog: z.boolean().default(true),
    /** Request path normalization before routing and authorization (the defaults refuse every ambiguous spelling). */
    pathNormalization: pathNormalizationSetting,
    /** How long the sidecar waits on an app or a peer. */
    timeouts: z
      .object({
        /** An app's request head must be complete this long after its first byte (else 408). */
        requestHead: durationSetting('60s'),
        /** An app connection with nothing in flight that sends nothing for this long is closed. */
        idle: durationSetting('65s'),
        /** The app has this long to accept a connection for a caller (else the caller goes elsewhere). */
        appConnect: durationSetting('10s'),
        /** A peer sidecar or gateway has this long to answer a tunnel (else the next endpoint is tried). */
        tunnelOpen: durationSetting('15s'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((settings) => !(settings.workload && settings.podIp), {
    message: 'set workload (file mode) or podIp (Kubernetes mode), not both',
    path: ['podIp'],
  });
export type Settings = z.output<typeof settingsSchema>;
