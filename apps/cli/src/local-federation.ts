import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { stringify } from 'yaml';
import { escapeEnvironment } from '@causeway/config';
import { TrustDirectory } from '@causeway/pki';
import { freePort } from '@causeway/testing';
import { NatsTrustStore } from '@causeway/trust';
import { startComponentProcess, type ComponentProcess } from './processes.ts';
import { startGrpcEcho, startHttpEcho, type SampleApp } from './sample-apps.ts';

/** A Service selecting `app: <name>` with one port named `portName` (its targetPort), and its ServiceExport. */
export function exportedService(
  namespace: string,
  name: string,
  port: number,
  portName: string,
  appProtocol?: string,
): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  selector: { app: ${name} }
  ports: [{ name: ${portName}, port: ${port}, targetPort: ${portName}${appProtocol ? `, appProtocol: ${appProtocol}` : ''} }]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: { name: ${name}, namespace: ${namespace} }
`;
}

/** The proxies connected to a controller process now (from its log). */
export function connectedProxies(controller: ComponentProcess): Set<string> {
  const connected = new Set<string>();
  for (const entry of controller.logs)
    if (entry.msg === 'proxy connected') connected.add(String(entry.proxy));
    else if (entry.msg === 'proxy disconnected') connected.delete(String(entry.proxy));
  return connected;
}

/** An AuthorizationPolicy with one rule on request paths, targeting one Service (YAML). */
export function pathPolicy(
  namespace: string,
  name: string,
  service: string,
  action: 'ALLOW' | 'DENY',
  paths: readonly string[],
): string {
  return `apiVersion: policy.causeway.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  targetRefs: [{ group: "", kind: Service, name: ${service} }]
  action: ${action}
  rules: [{ to: [{ paths: ${JSON.stringify(paths)} }] }]
`;
}

/** One cluster of a federation on this machine, in file mode (or Kubernetes mode, see `kubeconfigs`). */
export interface LocalCluster {
  readonly name: string;
  /** The running controller (a new process after {@link LocalFederation.restartController}). */
  controller: ComponentProcess;
  /** Its settings file. */
  readonly controllerSettings: string;
  /** `https://…` of the controller's signing and discovery service. */
  readonly controllerUrl: string;
  readonly gateway: ComponentProcess;
  /** `127.0.0.1:<port>` of the east-west gateway. */
  readonly gatewayAddress: string;
  /** The folder of YAML objects the controller watches. */
  readonly manifests: string;
}

/** A sidecar process in front of a local app. */
export interface SidecarProcess extends ComponentProcess {
  /** The port the app sends its outbound calls to. */
  readonly outboundPort: number;
  /** The mTLS listener ports, in the order of `inbound`. */
  readonly inboundPorts: readonly number[];
  readonly cluster: string;
  /** Its settings file (a restart uses it again). */
  readonly settingsFile: string;
}

/** An ingress gateway process. */
export interface IngressProcess extends ComponentProcess {
  /** Gateway listener port -> the `127.0.0.1:<port>` it is served on. */
  readonly listeners: Readonly<Record<string, string>>;
  readonly settingsFile: string;
  readonly cluster: string;
}

export interface SidecarSpec {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Registered in file mode: Services select it by these labels. */
  readonly workload?: { readonly name: string; readonly labels: Readonly<Record<string, string>> };
  readonly inbound?: ReadonlyArray<{ name?: string; appPort: number; appProtocol?: 'http' | 'h2c' }>;
  /** A JSON line per request (default true). */
  readonly accessLog?: boolean;
  /** Where the mTLS listeners listen (default 127.0.0.1). */
  readonly inboundHost?: string;
  /** The sidecar's `timeouts` settings (durations such as `2s`), where not the defaults. */
  readonly timeouts?: Readonly<Partial<Record<'requestHead' | 'idle' | 'appConnect' | 'tunnelOpen', string>>>;
  /** Sidecar settings written over the ones above, as its settings file takes them. */
  readonly settings?: Readonly<Record<string, unknown>>;
}

export interface LocalFederationOptions {
  /** Where trust material, settings, state and manifests go. */
  readonly dir: string;
  readonly natsUrl: string;
  readonly clusters: readonly string[];
  readonly trustDomain?: string;
  /** Catalog timing (shorter than production defaults suits a demo or a test). */
  readonly heartbeatInterval?: string;
  readonly staleAfter?: string;
  readonly workloadGrace?: string;
  /**
   * Clusters whose controller reads an API server (Kubernetes mode) instead of a folder:
   * cluster name -> kubeconfig path. Their sidecars register no workload; endpoints are the
   * EndpointSlices written to that API server.
   */
  readonly kubeconfigs?: Readonly<Record<string, string>>;
  readonly onLog?: (component: string, entry: Record<string, unknown>) => void;
  readonly stderr?: 'inherit' | 'ignore';
  /** Run the components' built bundles (`npm run build`) instead of their sources. */
  readonly built?: boolean;
}

/**
 * A federation on one machine in file mode: a trust root with one intermediate per
 * cluster (the bundle published on NATS), and per cluster a federation controller watching
 * a folder of YAML and an east-west gateway on a loopback port. Sidecars are added per
 * workload. Every process is a real component started from a settings file.
 */
export class LocalFederation {
  readonly clusters = new Map<string, LocalCluster>();
  private readonly sidecars: SidecarProcess[] = [];
  private readonly ingresses: IngressProcess[] = [];
  private readonly apps: SampleApp[] = [];
  readonly trust: TrustDirectory;
  readonly trustDomain: string;
  private readonly token = `local-join-${Math.random().toString(36).slice(2)}-${Date.now()}`;

  private constructor(private readonly options: LocalFederationOptions) {
    this.trust = new TrustDirectory(path.join(options.dir, 'trust'));
    this.trustDomain = options.trustDomain ?? 'mesh.local';
  }

  static async start(options: LocalFederationOptions): Promise<LocalFederation> {
    const federation = new LocalFederation(options);
    try {
      await federation.init();
    } catch (error) {
      await federation.stop();
      throw error;
    }
    return federation;
  }

  private get tokenFile(): string {
    return path.join(this.options.dir, 'join.token');
  }

  private async init(): Promise<void> {
    const { dir, natsUrl } = this.options;
    await mkdir(dir, { recursive: true });
    await this.trust.init({ trustDomain: this.trustDomain, keyType: 'ecdsa-p256' });
    for (const cluster of this.options.clusters) await this.trust.issueIntermediate(cluster);
    const connection = await connect({ servers: natsUrl, name: 'causeway-local-federation' });
    try {
      await (await NatsTrustStore.open(connection)).putBundle(await this.trust.readBundle());
    } finally {
      await connection.close();
    }
    await writeFile(this.tokenFile, this.token, { mode: 0o600 });
    // The controllers start together; each gateway needs its controller.
    await Promise.all(this.options.clusters.map((cluster) => this.startCluster(cluster)));
  }

  private async startCluster(name: string): Promise<void> {
    const { dir } = this.options;
    const manifests = path.join(dir, name, 'manifests');
    await mkdir(manifests, { recursive: true });
    const gatewayAddress = `127.0.0.1:${await freePort()}`;
    const files = this.trust.clusterFiles(name);
    const controllerSettings = await this.writeSettings(name, 'controller', {
      cluster: name,
      trustDomain: this.trustDomain,
      stateDir: path.join(dir, name, 'controller-state'),
      nats: { url: this.options.natsUrl },
      trust: {
        intermediateCertificate: files.certificate,
        intermediateKey: files.privateKey,
        bundle: this.trust.bundleFile,
      },
      signing: {
        address: '127.0.0.1:0',
        joinTokens: [{ token: this.token, namespaces: ['*'], serviceAccounts: ['*'] }],
      },
      catalog: {
        ...(this.options.kubeconfigs?.[name]
          ? { kubeconfig: this.options.kubeconfigs[name] }
          : { directory: manifests }),
        gatewayAddresses: [gatewayAddress],
        heartbeatInterval: this.options.heartbeatInterval ?? '1s',
        staleAfter: this.options.staleAfter ?? '5s',
        workloadGrace: this.options.workloadGrace ?? '2s',
      },
    });
    const controller = await this.spawn(`${name}/controller`, 'federation-controller', controllerSettings);
    const controllerUrl = String(
      (await controller.waitForLog('signing and discovery service listening')).signing,
    );
    const gateway = await this.spawn(
      `${name}/gateway`,
      'east-west-gateway',
      await this.writeSettings(name, 'gateway', {
        ...this.proxyBase(name, controllerUrl, 'gateway'),
        address: gatewayAddress,
      }),
    );
    await gateway.waitForLog('east-west gateway listening');
    this.clusters.set(name, {
      name,
      controller,
      controllerSettings,
      controllerUrl,
      gateway,
      gatewayAddress,
      manifests,
    });
  }

  /**
   * Stops a cluster's controller (SIGKILL unless told otherwise), waits `downMs`, and starts
   * it again from the same settings file and state folder; resolves once it listens, or,
   * with `awaitProxies`, once every proxy the old process had has connected to the new one
   * (it throws naming those that have not within 30 s). Its proxies are left running,
   * configured with the URL the first process listened on.
   */
  async restartController(
    name: string,
    options: { signal?: NodeJS.Signals; downMs?: number; awaitProxies?: boolean } = {},
  ): Promise<{ controller: ComponentProcess; url: string }> {
    const cluster = this.cluster(name);
    const proxies = connectedProxies(cluster.controller);
    await cluster.controller.stop(options.signal ?? 'SIGKILL');
    if (options.downMs) await new Promise((resolve) => setTimeout(resolve, options.downMs));
    cluster.controller = await this.spawn(
      `${name}/controller`,
      'federation-controller',
      cluster.controllerSettings,
    );
    const url = String(
      (await cluster.controller.waitForLog('signing and discovery service listening')).signing,
    );
    const { controller } = cluster;
    for (const deadline = Date.now() + 30_000; options.awaitProxies;) {
      const back = connectedProxies(controller);
      const missing = [...proxies].filter((proxy) => !back.has(proxy));
      if (missing.length === 0) break;
      if (Date.now() > deadline)
        throw new Error(`${name}'s proxies did not reconnect within 30 s: ${missing.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { controller, url };
  }

  private proxyBase(cluster: string, controllerUrl: string, stateName: string): Record<string, unknown> {
    return {
      cluster,
      trustDomain: this.trustDomain,
      controller: controllerUrl,
      trustBundle: this.trust.bundleFile,
      tokenFile: this.tokenFile,
      stateDir: path.join(this.options.dir, cluster, `${stateName}-state`),
    };
  }

  private async writeSettings(cluster: string, name: string, settings: unknown): Promise<string> {
    const file = path.join(this.options.dir, cluster, `${name}.yaml`);
    await mkdir(path.dirname(file), { recursive: true });
    // (Written as read: a `$` in a path is not taken for an environment variable.)
    await writeFile(file, stringify(escapeEnvironment(settings)));
    return file;
  }

  private spawn(label: string, app: string, settingsFile: string): Promise<ComponentProcess> {
    return startComponentProcess(app, settingsFile, {
      onLog: (entry) => this.options.onLog?.(label, entry),
      stderr: this.options.stderr ?? 'inherit',
      built: this.options.built ?? false,
    });
  }

  cluster(name: string): LocalCluster {
    const cluster = this.clusters.get(name);
    if (!cluster) throw new Error(`no cluster ${name} in this federation`);
    return cluster;
  }

  /** Writes (or replaces) one YAML file in a cluster's watched folder. */
  async apply(cluster: string, file: string, yaml: string): Promise<void> {
    await writeFile(path.join(this.cluster(cluster).manifests, file), yaml);
  }

  /** Starts a sidecar for a workload of a cluster; resolves once it listens. */
  async startSidecar(cluster: string, spec: SidecarSpec): Promise<SidecarProcess> {
    const target = this.cluster(cluster);
    const name = spec.workload?.name ?? spec.serviceAccount;
    const settings = await this.writeSettings(cluster, `sidecar-${name}`, {
      ...this.proxyBase(cluster, target.controllerUrl, `sidecar-${name}`),
      namespace: spec.namespace,
      serviceAccount: spec.serviceAccount,
      // Kubernetes mode: endpoints come from EndpointSlices, which name the pod's IP.
      ...(this.options.kubeconfigs?.[cluster]
        ? { podIp: spec.inboundHost ?? '127.0.0.1' }
        : spec.workload
          ? { workload: { name: spec.workload.name, labels: spec.workload.labels, address: '127.0.0.1' } }
          : {}),
      outbound: '127.0.0.1:0',
      inboundHost: spec.inboundHost ?? '127.0.0.1',
      accessLog: spec.accessLog ?? true,
      ...(spec.timeouts ? { timeouts: spec.timeouts } : {}),
      inbound: (spec.inbound ?? []).map((port) => ({
        ...(port.name ? { name: port.name } : {}),
        port: 0,
        appPort: port.appPort,
        appProtocol: port.appProtocol ?? 'http',
      })),
      ...spec.settings,
    });
    return await this.spawnSidecar(cluster, name, settings);
  }

  private async spawnSidecar(cluster: string, name: string, settingsFile: string): Promise<SidecarProcess> {
    const child = await this.spawn(`${cluster}/sidecar-${name}`, 'sidecar', settingsFile);
    const listening = await child.waitForLog('sidecar listening');
    const sidecar: SidecarProcess = {
      ...child,
      outboundPort: Number(String(listening.outbound).split(':').at(-1)),
      inboundPorts: listening.inbound as number[],
      cluster,
      settingsFile,
    };
    this.sidecars.push(sidecar);
    return sidecar;
  }

  /**
   * Stops a sidecar and starts it again from the same settings and state folder (its
   * listeners on new ports where the settings say 0); resolves once it listens.
   */
  async restartSidecar(sidecar: SidecarProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<SidecarProcess> {
    await sidecar.stop(signal);
    this.sidecars.splice(this.sidecars.indexOf(sidecar), 1);
    const name = path.basename(sidecar.settingsFile, '.yaml').replace(/^sidecar-/, '');
    return await this.spawnSidecar(sidecar.cluster, name, sidecar.settingsFile);
  }

  /**
   * A sample app (HTTP echo, or gRPC echo over h2c) behind its sidecar, registered as workload
   * `<name>-<cluster>` with label `app: <name>` and service account `<name>`: what
   * {@link exportedService} selects (port name `http` or `grpc`).
   */
  async startSampleWorkload(
    cluster: string,
    namespace: string,
    name: string,
    kind: 'http' | 'grpc',
    /** The workload's name (default `<name>-<cluster>`): a second instance needs its own. */
    instance = `${name}-${cluster}`,
  ): Promise<{ app: SampleApp; sidecar: SidecarProcess }> {
    const identity = { service: name, cluster, instance };
    const app = kind === 'http' ? await startHttpEcho(identity) : await startGrpcEcho(identity);
    this.apps.push(app);
    const sidecar = await this.startSidecar(cluster, {
      namespace,
      serviceAccount: name,
      workload: { name: instance, labels: { app: name } },
      inbound: [
        kind === 'http'
          ? { name: 'http', appPort: app.port }
          : { name: 'grpc', appPort: app.port, appProtocol: 'h2c' },
      ],
    });
    return { app, sidecar };
  }

  /**
   * Starts an ingress gateway in a cluster, serving the Gateway listener ports `ports` on
   * free loopback ports; resolves once it runs (its listeners open with the first config
   * that has them: see `waitForListener`).
   */
  async startIngressGateway(
    cluster: string,
    ports: readonly number[],
    settings: Readonly<Record<string, unknown>> = {},
    name = 'ingress',
  ): Promise<IngressProcess> {
    const target = this.cluster(cluster);
    const listeners: Record<string, string> = {};
    for (const port of ports) listeners[String(port)] = `127.0.0.1:${await freePort()}`;
    const settingsFile = await this.writeSettings(cluster, name, {
      ...this.proxyBase(cluster, target.controllerUrl, name),
      listeners,
      ...settings,
    });
    const child = await this.spawn(`${cluster}/${name}`, 'ingress-gateway', settingsFile);
    await child.waitForLog('ingress gateway started');
    const ingress: IngressProcess = { ...child, listeners, settingsFile, cluster };
    this.ingresses.push(ingress);
    return ingress;
  }

  /** Every sidecar started so far. */
  allSidecars(): readonly SidecarProcess[] {
    return this.sidecars;
  }

  /** Stops every process (sidecars first, then gateways, then controllers) and the sample apps. */
  async stop(): Promise<void> {
    await Promise.all([...this.ingresses, ...this.sidecars].map((proxy) => proxy.stop()));
    for (const app of this.apps) await app.close().catch(() => {});
    await Promise.all([...this.clusters.values()].map((cluster) => cluster.gateway.stop()));
    await Promise.all([...this.clusters.values()].map((cluster) => cluster.controller.stop()));
  }
}
