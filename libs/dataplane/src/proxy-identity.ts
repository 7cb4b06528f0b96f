import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { z } from '@causeway/config';
import { DiscoveryClient, type ProxyKind, type SnapshotMessage, type Workload } from '@causeway/discovery';
import { CertificateRenewer, type WorkloadCredentials } from '@causeway/identity';
import type { SignedTrustBundle } from '@causeway/pki';

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9, -)');

/** The settings every proxy needs to get a mesh certificate and its config. */
export const proxyIdentitySettings = {
  cluster: dnsLabel,
  trustDomain: z.string().regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain (a-z, 0-9, ., -, _)'),
  /** `https://host:port` of this cluster's federation controller (signing and discovery). */
  controller: z.string().regex(/^https:\/\/\S+$/, 'must be https://host:port'),
  /** The signed bundle (bundle.json): the roots trusted before the controller is reached. */
  trustBundle: z.string().min(1),
  /** The file holding the proof presented for certificates: a join token, or a service-account token. */
  tokenFile: z.string().min(1),
  /**
   * Where the last config and the mesh certificate (with its key, mode 0600) are kept, so
   * that a proxy restarted while its controller is away starts and serves with them.
   */
  stateDir: z.string().min(1).optional(),
};

export interface ProxyIdentity {
  /** The current mesh credentials (renewed in the background). */
  credentials(): WorkloadCredentials;
  /** A TLS context for the current credentials (rebuilt when they change). */
  secureContext(): tls.SecureContext;
  /**
   * Connects to the discovery API (a sidecar in file mode registers its workload, whose
   * ports are known once its listeners are bound).
   */
  connect(workload?: Workload): Promise<DiscoveryClient>;
  stop(): Promise<void>;
}

/**
 * Obtains a proxy's mesh certificate from its controller (renewed at half its life);
 * `connect()` then follows the discovery API with it. The config arrives through
 * `onConfig` (and is kept on disk under `stateDir`).
 */
export async function startProxyIdentity(options: {
  settings: {
    cluster: string;
    trustDomain: string;
    controller: string;
    trustBundle: string;
    tokenFile: string;
    stateDir?: string;
  };
  kind: ProxyKind;
  proxy: string;
  namespace: string;
  serviceAccount: string;
  instance: string;
  onConfig: (message: SnapshotMessage) => void | Promise<void>;
  /** New credentials (after a renewal or a new bundle). */
  onCredentials?: (credentials: WorkloadCredentials) => void;
  log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}): Promise<ProxyIdentity> {
  const { settings } = options;
  const bundle = JSON.parse(await readFile(settings.trustBundle, 'utf8')) as SignedTrustBundle;
  let context: { credentials: WorkloadCredentials; context: tls.SecureContext } | undefined;
  const renewer = new CertificateRenewer({
    controllerUrl: settings.controller,
    bootstrapRoots: bundle.bundle.roots,
    trustDomain: settings.trustDomain,
    cluster: settings.cluster,
    namespace: options.namespace,
    serviceAccount: options.serviceAccount,
    instance: options.instance,
    token: async () => (await readFile(settings.tokenFile, 'utf8')).trim(),
    onCredentials: (credentials) => {
      options.log('info', 'mesh certificate', {
        spiffeId: credentials.spiffeId,
        notAfter: credentials.notAfter.toISOString(),
      });
      options.onCredentials?.(credentials);
    },
    onError: (error) => options.log('warn', 'certificate renewal failed (retrying)', { err: error.message }),
    ...(settings.stateDir ? { statePath: path.join(settings.stateDir, 'credentials.json') } : {}),
  });
  await renewer.start();
  const credentials = (): WorkloadCredentials => renewer.current()!;
  let discovery: DiscoveryClient | undefined;
  const connect = async (workload?: Workload): Promise<DiscoveryClient> => {
    discovery = new DiscoveryClient({
      controllerUrl: settings.controller,
      trustDomain: settings.trustDomain,
      cluster: settings.cluster,
      proxy: options.proxy,
      kind: options.kind,
      ...(workload ? { workload } : {}),
      credentials: () => renewer.current(),
      onConfig: options.onConfig,
      ...(settings.stateDir ? { statePath: path.join(settings.stateDir, 'config.json') } : {}),
      onError: (error) => options.log('warn', 'discovery error (reconnecting)', { err: error.message }),
      log: (message, fields) => options.log('info', message, fields),
    });
    await discovery.start();
    return discovery;
  };
  return {
    credentials,
    secureContext: () => {
      const current = credentials();
      if (context?.credentials !== current)
        context = {
          credentials: current,
          context: tls.createSecureContext({
            key: current.privateKeyPem,
            cert: current.certificateChainPem,
            ca: [...current.roots],
            minVersion: 'TLSv1.3',
          }),
        };
      return context.context;
    },
    connect,
    stop: async () => {
      await discovery?.stop();
      await renewer.stop();
    },
  };
}
