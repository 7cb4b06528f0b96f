import net from 'node:net';
import { durationSetting, listenAddress, z } from '@causeway/config';
import { pathNormalizationSetting, proxyIdentitySettings } from '@causeway/dataplane';

const gatewayName = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
    'must be <namespace>/<name>',
  );
const trustedPeer = z.string().refine((value) => {
  const [address, bits, ...rest] = value.split('/');
  if (rest.length > 0 || !address || !net.isIP(address)) return false;
  if (bits === undefined) return true;
  const max = net.isIPv6(address) ? 128 : 32;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}, 'must be an IP address or a CIDR range (10.0.0.0/8)');

/** The YAML settings file. */
export const settingsSchema = z
  .object({
    ...proxyIdentitySettings,
    /** The gateway's identity: `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
    namespace: z.string().min(1).default('causeway-system'),
    serviceAccount: z.string().min(1).default('ingress-gateway'),
    /** The Gateways served (`<namespace>/<name>`); none: every Gateway of class `causeway`. */
    gateways: z.array(gatewayName).optional(),
    /** Where each Gateway listener port is served here (`"80": "0.0.0.0:8080"`); others: all interfaces, the same port. */
    listeners: z.record(z.string().regex(/^\d{1,5}$/, 'must be a port number'), listenAddress).default({}),
    /** Peers whose X-Forwarded-* headers are believed (addresses or CIDR ranges). */
    trustedProxies: z.array(trustedPeer).default([]),
    accessLog: z.boolean().default(true),
    pathNormalization: pathNormalizationSetting,
    timeouts: z
      .object({
        /** A request head must be complete this long after the connection's first byte (else 408). */
        requestHead: durationSetting('10s'),
        /** A whole request, body included, must arrive within this long (else 408). */
        request: durationSetting('300s'),
        /** A kept-alive client connection with nothing in flight is closed after this long. */
        idle: durationSetting('65s'),
      })
      .strict()
      .prefault({}),
    /** Where RateLimitPolicies are counted for every replica; none: each replica counts alone. */
    redis: z
      .object({
        url: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be redis://host:port'),
        /** A connection attempt may take this long. */
        connectTimeout: durationSetting('500ms'),
        /** A decision waits this long for Redis before the local limiter decides. */
        commandTimeout: durationSetting('250ms'),
      })
      .strict()
      .optional(),
    /** Bytes of request head accepted (more: 431). */
    maxHeaderBytes: z.number().int().min(1_024).max(1_048_576).default(16_384),
  })
  .strict();
export type Settings = z.output<typeof settingsSchema>;
