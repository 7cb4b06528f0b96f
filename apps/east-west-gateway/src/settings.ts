import { listenAddress, z } from '@causeway/config';
import { proxyIdentitySettings } from '@causeway/dataplane';

/** The YAML settings file. */
export const settingsSchema = z
  .object({
    ...proxyIdentitySettings,
    /** Where other clusters connect (the address published as `catalog.gatewayAddresses`). */
    address: listenAddress.default('0.0.0.0:15443'),
    maxConnections: z.number().int().min(1).default(10_000),
    maxConnectionsPerSource: z.number().int().min(1).default(1_000),
    /** Seconds a passed-through connection may carry nothing before it is closed. */
    idleTimeoutSeconds: z.number().int().min(1).default(3_600),
    /** The gateway's identity: `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
    namespace: z.string().min(1).default('causeway-system'),
    serviceAccount: z.string().min(1).default('east-west-gateway'),
  })
  .strict();
export type Settings = z.output<typeof settingsSchema>;
