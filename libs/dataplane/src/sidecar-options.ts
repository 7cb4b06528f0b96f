import type { Registry } from 'prom-client';
import type { ProxyConfig } from '@causeway/discovery';
import type { PathNormalizationOptions } from '@causeway/http';
import type { WorkloadCredentials } from '@causeway/identity';

/** One inbound port: the mTLS listener peers reach, and the app port behind it. */
export interface InboundPort {
  readonly name?: string;
  /** The mTLS listener's port (0: any free port). */
  readonly port: number;
  readonly appPort: number;
  /** How the app speaks: HTTP/1.1, or HTTP/2 cleartext (gRPC). */
  readonly appProtocol: 'http' | 'h2c';
}

/** How long the sidecar waits on the parties of a connection (milliseconds). */
export interface SidecarTimeouts {
  /** An app's request head must be complete this long after its first byte (else 408). */
  readonly requestHeadMs: number;
  /** An app connection with no request in flight that sends nothing for this long is closed. */
  readonly idleMs: number;
  /** The app has this long to accept a tunnel's connection (else the caller goes elsewhere). */
  readonly appConnectMs: number;
  /** A peer has this long to answer a tunnel (else the next target is tried). */
  readonly tunnelOpenMs: number;
}

export const DEFAULT_SIDECAR_TIMEOUTS: SidecarTimeouts = Object.freeze({
  requestHeadMs: 60_000,
  idleMs: 65_000,
  appConnectMs: 10_000,
  tunnelOpenMs: 15_000,
});

export interface SidecarOptions {
  readonly cluster: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly credentials: () => WorkloadCredentials;
  readonly config: () => ProxyConfig | undefined;
  /** Where the app listens. */
  readonly appHost: string;
  readonly inbound: readonly InboundPort[];
  /** The address the inbound listeners bind (default all interfaces). */
  readonly inboundHost?: string;
  /** The address peers reach this workload at (its endpoint address in the catalog). */
  readonly workloadAddress: string;
  readonly outbound: { readonly host: string; readonly port: number };
  /** How request paths are normalized before routing and authorization (defaults: the strict rules). */
  readonly pathNormalization?: PathNormalizationOptions;
  /** Timeouts (defaults: `DEFAULT_SIDECAR_TIMEOUTS`). */
  readonly timeouts?: Partial<SidecarTimeouts>;
  /** Request bodies up to this size are kept for a retry on another endpoint (default 64 KiB). */
  readonly retryBufferBytes?: number;
  readonly registry?: Registry;
  readonly accessLog?: (entry: Record<string, unknown>) => void;
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}
