import type { X509Certificate } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BlockList, isIP } from 'node:net';
import { peerIdentity, type SpiffeId } from '@causeway/pki';
import {
  compileSnapshot,
  PROXY_KINDS,
  type DiscoveryInput,
  type ProxyConfig,
  type ProxyKind,
  type Registration,
  type Workload,
} from './snapshot.ts';

/** How often an idle stream carries an empty line, so both ends notice a dead connection. */
export const KEEPALIVE_MS = 15_000;
/** Configs kept per proxy, so that `/debug/config` can show the acknowledged one. */
const KEPT_VERSIONS = 4;
/** Disconnected proxies kept in the table (for `causeway explain`), oldest dropped first. */
const MAX_DISCONNECTED = 1_000;

/** What the controller knows about one proxy. */
export interface ProxyStatus {
  readonly proxy: string;
  readonly kind: ProxyKind;
  readonly spiffeId: string;
  readonly connected: boolean;
  readonly connectedAt: string;
  readonly sentVersion?: number;
  readonly ackedVersion?: number;
  readonly ackedAt?: string;
  /** Services (`ns/name`) in the acknowledged config. */
  readonly ackedServices: readonly string[];
}

interface ProxyEntry {
  registration: Registration;
  spiffeId: string;
  connectedAt: Date;
  stream: ServerResponse | undefined;
  keepalive: NodeJS.Timeout | undefined;
  sentJson: string | undefined;
  sent: Array<{ version: number; at: number; config: ProxyConfig }>;
  acked: { version: number; at: Date } | undefined;
  /**
   * A workload registered not ready until its sidecar acknowledges a config that lists it:
   * before that, the sidecar would refuse what comes for it (its config does not say it
   * serves those listeners yet).
   */
  warming:
    | {
        readonly owner: { namespace: string; serviceAccount: string };
        readonly workload: Workload;
        /** Only a config sent after this version (after the registration) counts. */
        readonly after: number;
      }
    | undefined;
}

/** A refusal of the discovery API: the HTTP status and a stable code. */
class DiscoveryError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const proxyIdPattern = '^[A-Za-z0-9][A-Za-z0-9._~-]{0,252}$';

/** Addresses a workload cannot have: unspecified, multicast, broadcast. */
const NOT_UNICAST = new BlockList();
NOT_UNICAST.addSubnet('0.0.0.0', 8, 'ipv4');
NOT_UNICAST.addSubnet('224.0.0.0', 4, 'ipv4');
NOT_UNICAST.addAddress('255.255.255.255', 'ipv4');
NOT_UNICAST.addAddress('::', 'ipv6');
NOT_UNICAST.addSubnet('ff00::', 8, 'ipv6');
/** Whether two IP addresses are the same (however an IPv6 address is spelled). */
function sameAddress(a: string, b: string): boolean {
  const family = isIP(a);
  if (family === 0 || family !== isIP(b)) return false;
  const list = new BlockList();
  list.addAddress(a, family === 6 ? 'ipv6' : 'ipv4');
  return list.check(b, family === 6 ? 'ipv6' : 'ipv4');
}
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
const portNumber = { type: 'integer', minimum: 1, maximum: 65_535 };

/** The JSON schema of a registered workload (file mode). */
const WORKLOAD_SCHEMA = {
  type: 'object',
  required: ['name', 'labels', 'address', 'ports'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: DNS_LABEL },
    labels: { type: 'object', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 63 } },
    address: { type: 'string', maxLength: 45 },
    ports: {
      type: 'array',
      minItems: 1,
      maxItems: 32,
      items: {
        type: 'object',
        required: ['port'],
        additionalProperties: false,
        properties: { name: { type: 'string', pattern: DNS_LABEL }, port: portNumber, appPort: portNumber },
      },
    },
    zone: { type: 'string', maxLength: 63 },
    ready: { type: 'boolean' },
  },
};

/**
 * The controller side of the discovery API. Proxies connect over mTLS with their mesh
 * certificate (this cluster's only), register, and receive a stream of complete, versioned
 * snapshots (newline-delimited JSON), one whenever what they need changes; they
 * acknowledge each version they applied.
 *
 * - `POST /v1/discovery/stream` `{proxy, kind, version?}` -> `application/x-ndjson`
 * - `POST /v1/discovery/ack` `{proxy, version}` -> 204
 */
export class DiscoveryServer {
  private readonly proxiesById = new Map<string, ProxyEntry>();
  private lastVersion = 0;
  private scheduled = false;
  private readonly pushes: Counter;
  private readonly pushLatency: Histogram;
  private readonly ackedVersion: Gauge;

  constructor(
    private readonly options: {
      cluster: string;
      trustDomain: string;
      roots: () => readonly X509Certificate[];
      input: () => DiscoveryInput;
      registry?: Registry;
      log?: (message: string, fields?: Record<string, unknown>) => void;
      /**
       * Why proxies cannot have a config yet (say, the catalog has not started), or
       * undefined once they can. Until then streams are refused with 503 and proxies keep
       * the config they have: a restarted controller never sends one with less in it.
       */
      notReady?: () => string | undefined;
      /**
       * The SPIFFE IDs that may register as ingress gateways (they get the private keys of
       * HTTPS listeners); default `spiffe://<td>/ns/causeway-system/sa/ingress-gateway`.
       */
      ingressIdentities?: readonly string[];
      /**
       * File mode: where sidecars' workloads are registered (their endpoints). A throw
       * refuses the connection with the error's message. Without it, workloads are refused.
       */
      workloads?: {
        register(
          proxy: string,
          owner: { namespace: string; serviceAccount: string },
          workload: Workload,
        ): void;
        disconnected(proxy: string): void;
        /** The workload registered under a proxy id now (from an earlier stream, or restored). */
        registered(proxy: string): Workload | undefined;
      };
    },
  ) {
    const registers = options.registry ? [options.registry] : [];
    const proxies = this.proxiesById;
    new Gauge({
      name: 'causeway_discovery_proxies',
      help: 'Proxies connected to this controller, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const kind of PROXY_KINDS) this.set({ kind }, 0);
        for (const entry of proxies.values()) if (entry.stream) this.inc({ kind: entry.registration.kind });
      },
    });
    this.pushes = new Counter({
      name: 'causeway_discovery_pushes_total',
      help: 'Config snapshots sent to proxies.',
      labelNames: ['kind'],
      registers,
    });
    this.pushLatency = new Histogram({
      name: 'causeway_discovery_push_seconds',
      help: 'Seconds from sending a config snapshot to the proxy acknowledging it.',
      labelNames: ['kind'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.ackedVersion = new Gauge({
      name: 'causeway_discovery_config_version',
      help: 'The config version each proxy last acknowledged.',
      labelNames: ['proxy', 'kind'],
      registers,
    });
  }

  /**
   * The discovery API as a fastify plugin, for the controller's HTTPS server (which asks for
   * client certificates). Errors answer `{ code, message }` with the error's status.
   */
  readonly routes: FastifyPluginAsync = async (app) => {
    app.setErrorHandler((error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      const code = (error as { code?: unknown }).code;
      if (
        error instanceof DiscoveryError ||
        (status < 500 && typeof code === 'string' && code.startsWith('CAUSEWAY_'))
      )
        return reply.code(status).send({ code, message: (error as Error).message });
      if (status < 500)
        return reply
          .code(status)
          .send({ code: 'CAUSEWAY_DISCOVERY_BAD_REQUEST', message: (error as Error).message });
      this.options.log?.('discovery request failed', { error: String(error) });
      return reply.code(500).send({ code: 'CAUSEWAY_DISCOVERY_INTERNAL', message: 'internal error' });
    });
    const proxy = { type: 'string', pattern: proxyIdPattern };
    const version = { type: 'integer', minimum: 1 };
    app.post<{ Body: Registration }>(
      '/v1/discovery/stream',
      {
        schema: {
          body: {
            type: 'object',
            required: ['proxy', 'kind'],
            additionalProperties: false,
            properties: {
              proxy,
              kind: { type: 'string', enum: [...PROXY_KINDS] },
              version,
              workload: WORKLOAD_SCHEMA,
            },
          },
        },
      },
      async (request, reply) => {
        const identity = this.authenticate(request);
        const notReady = this.options.notReady?.();
        if (notReady)
          throw new DiscoveryError(503, 'CAUSEWAY_DISCOVERY_NOT_READY', `${notReady}; retry shortly`);
        const spiffeId = identity.uri;
        const registration = request.body;
        const ingress = this.options.ingressIdentities ?? [
          `spiffe://${this.options.trustDomain}/ns/causeway-system/sa/ingress-gateway`,
        ];
        if (registration.kind === 'ingress-gateway' && !ingress.includes(spiffeId))
          throw new DiscoveryError(
            403,
            'CAUSEWAY_DISCOVERY_KIND_REFUSED',
            `${spiffeId} may not register as an ingress gateway (allowed: ${ingress.join(', ')})`,
          );
        const existing = this.proxiesById.get(registration.proxy);
        if (existing && existing.spiffeId !== spiffeId) {
          throw new DiscoveryError(
            409,
            'CAUSEWAY_DISCOVERY_PROXY_TAKEN',
            `proxy ${registration.proxy} is registered by ${existing.spiffeId}`,
          );
        }
        const warming = registration.workload
          ? this.registerWorkload(registration, identity, request.raw.socket.remoteAddress)
          : undefined;
        // Registered again without its workload: the workload's endpoints start to expire.
        if (!registration.workload && existing?.registration.workload)
          this.options.workloads?.disconnected(registration.proxy);
        if (existing) {
          const previous = existing.stream;
          this.closeStream(existing);
          previous?.end();
        }
        const entry: ProxyEntry = existing ?? {
          registration,
          spiffeId,
          connectedAt: new Date(),
          stream: undefined,
          keepalive: undefined,
          sentJson: undefined,
          sent: [],
          acked: undefined,
          warming: undefined,
        };
        entry.registration = registration;
        entry.warming = warming;
        entry.connectedAt = new Date();
        entry.sentJson = undefined;
        this.proxiesById.set(registration.proxy, entry);
        this.trimDisconnected();
        reply.hijack();
        const stream = reply.raw;
        stream.writeHead(200, {
          'content-type': 'application/x-ndjson',
          'cache-control': 'no-store',
        });
        entry.stream = stream;
        entry.keepalive = setInterval(() => stream.write('\n'), KEEPALIVE_MS);
        const closed = (): void => {
          if (entry.stream !== stream) return;
          this.closeStream(entry);
          // An ack still on its way must not bring back a workload whose sidecar is gone.
          entry.warming = undefined;
          if (registration.workload) this.options.workloads?.disconnected(registration.proxy);
          this.options.log?.('proxy disconnected', { proxy: registration.proxy });
        };
        request.raw.socket.once('close', closed);
        stream.once('close', closed);
        this.options.log?.('proxy connected', {
          proxy: registration.proxy,
          kind: registration.kind,
          spiffeId,
          hasVersion: registration.version ?? null,
        });
        this.push(entry, this.options.input());
      },
    );
    app.post<{ Body: { proxy: string; version: number } }>(
      '/v1/discovery/ack',
      {
        schema: {
          body: {
            type: 'object',
            required: ['proxy', 'version'],
            additionalProperties: false,
            properties: { proxy, version },
          },
        },
      },
      async (request, reply) => {
        const spiffeId = this.authenticate(request).uri;
        const entry = this.proxiesById.get(request.body.proxy);
        if (!entry || entry.spiffeId !== spiffeId) {
          throw new DiscoveryError(
            404,
            'CAUSEWAY_DISCOVERY_UNKNOWN_PROXY',
            `no proxy ${request.body.proxy} is registered by ${spiffeId}`,
          );
        }
        const sent = entry.sent.find((item) => item.version === request.body.version);
        if (!sent) {
          throw new DiscoveryError(
            409,
            'CAUSEWAY_DISCOVERY_UNKNOWN_VERSION',
            `version ${request.body.version} was not sent to ${request.body.proxy}`,
          );
        }
        const { warming } = entry;
        if (
          warming &&
          entry.stream &&
          sent.version > warming.after &&
          listsWorkload(sent.config, warming.workload) &&
          this.options.workloads?.registered(request.body.proxy)?.ready === false
        ) {
          entry.warming = undefined;
          try {
            this.options.workloads.register(request.body.proxy, warming.owner, warming.workload);
          } catch (error) {
            // Its name was taken meanwhile: it stays as it is (not ready).
            this.options.log?.('workload not made ready', {
              proxy: request.body.proxy,
              reason: (error as Error).message,
            });
          }
        }
        if (!entry.acked || entry.acked.version < sent.version) {
          entry.acked = { version: sent.version, at: new Date() };
          this.pushLatency.observe({ kind: entry.registration.kind }, (Date.now() - sent.at) / 1000);
          this.ackedVersion.set(
            { proxy: entry.registration.proxy, kind: entry.registration.kind },
            sent.version,
          );
        }
        return reply.code(204).send();
      },
    );
  };

  /**
   * Recompiles every connected proxy's snapshot soon (changes in one turn of the event loop
   * are pushed together) and sends those that changed.
   */
  update(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const input = this.options.input();
      for (const entry of this.proxiesById.values()) if (entry.stream) this.push(entry, input);
    });
  }

  /** Every proxy this controller knows, connected or not, sorted by id. */
  proxies(): ProxyStatus[] {
    return [...this.proxiesById.values()]
      .map((entry) => {
        const acked = entry.acked && entry.sent.find((item) => item.version === entry.acked!.version);
        return {
          proxy: entry.registration.proxy,
          kind: entry.registration.kind,
          spiffeId: entry.spiffeId,
          connected: entry.stream !== undefined,
          connectedAt: entry.connectedAt.toISOString(),
          ...(entry.sent.length > 0 ? { sentVersion: entry.sent.at(-1)!.version } : {}),
          ...(entry.acked
            ? { ackedVersion: entry.acked.version, ackedAt: entry.acked.at.toISOString() }
            : {}),
          ackedServices: acked ? acked.config.services.map((s) => `${s.namespace}/${s.name}`) : [],
        };
      })
      .sort((a, b) => a.proxy.localeCompare(b.proxy));
  }

  /** What `/debug/config?proxy=ID` shows: the proxy's state and the config it acknowledged. */
  debugConfig(proxy: string): Record<string, unknown> | undefined {
    const entry = this.proxiesById.get(proxy);
    if (!entry) return undefined;
    const status = this.proxies().find((item) => item.proxy === proxy)!;
    const acked = entry.acked && entry.sent.find((item) => item.version === entry.acked!.version);
    const latest = entry.sent.at(-1);
    return {
      ...status,
      ackedConfig: acked ? redacted(acked.config) : null,
      pendingConfig: latest && latest !== acked ? redacted(latest.config) : null,
    };
  }

  /** Ends every stream (proxies reconnect to the next controller). */
  close(): void {
    for (const entry of this.proxiesById.values()) {
      const stream = entry.stream;
      this.closeStream(entry);
      stream?.end();
    }
  }

  private push(entry: ProxyEntry, input: DiscoveryInput): void {
    const config = compileSnapshot(input, entry.registration);
    const json = JSON.stringify(config);
    if (json === entry.sentJson || !entry.stream) return;
    const version = (this.lastVersion = Math.max(this.lastVersion + 1, Date.now()));
    entry.sentJson = json;
    entry.sent.push({ version, at: Date.now(), config });
    if (entry.sent.length > KEPT_VERSIONS) entry.sent.shift();
    entry.stream.write(`{"version":${version},"config":${json}}\n`);
    this.pushes.inc({ kind: entry.registration.kind });
  }

  private closeStream(entry: ProxyEntry): void {
    if (entry.keepalive) clearInterval(entry.keepalive);
    entry.keepalive = undefined;
    entry.stream = undefined;
  }

  private trimDisconnected(): void {
    const disconnected = [...this.proxiesById.values()].filter((entry) => !entry.stream);
    for (const entry of disconnected.slice(0, Math.max(0, disconnected.length - MAX_DISCONNECTED))) {
      this.proxiesById.delete(entry.registration.proxy);
      this.ackedVersion.remove({ proxy: entry.registration.proxy, kind: entry.registration.kind });
    }
  }

  /**
   * File mode: records a sidecar's workload under its certificate's namespace and service
   * account. A workload not registered as it is now (a new sidecar, new listener ports) is
   * registered not ready, and said to be warming: it becomes ready when its sidecar
   * acknowledges a config that lists it. One that is (the same sidecar reconnecting, or
   * its registration restored after a controller restart) keeps serving throughout.
   */
  private registerWorkload(
    registration: Registration,
    identity: SpiffeId,
    remote: string | undefined,
  ): ProxyEntry['warming'] {
    const workload = registration.workload!;
    if (!this.options.workloads)
      throw new DiscoveryError(
        400,
        'CAUSEWAY_DISCOVERY_WORKLOAD_NOT_ACCEPTED',
        'this controller reads endpoints from its API server (Kubernetes mode); workloads register only in file mode',
      );
    if (registration.kind !== 'sidecar')
      throw new DiscoveryError(400, 'CAUSEWAY_DISCOVERY_BAD_REQUEST', 'only a sidecar registers a workload');
    if (identity.kind !== 'workload')
      throw new DiscoveryError(
        403,
        'CAUSEWAY_DISCOVERY_NOT_A_WORKLOAD',
        `${identity.uri} is not a workload identity (spiffe://<td>/ns/<namespace>/sa/<account>)`,
      );
    const family = isIP(workload.address);
    if (family === 0)
      throw new DiscoveryError(
        400,
        'CAUSEWAY_DISCOVERY_BAD_REQUEST',
        `workload.address ${JSON.stringify(workload.address)} is not an IP address`,
      );
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (NOT_UNICAST.check(workload.address, type))
      throw new DiscoveryError(
        400,
        'CAUSEWAY_DISCOVERY_BAD_REQUEST',
        `workload.address ${workload.address} is not a unicast address`,
      );
    // A sidecar registers the address it connects from, no other: east-west gateways pass
    // connections on to these addresses, and must not be pointed at hosts outside the mesh.
    const from = (remote ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    if (!sameAddress(workload.address, from))
      throw new DiscoveryError(
        403,
        'CAUSEWAY_DISCOVERY_ADDRESS_REFUSED',
        `workload.address ${workload.address} is not the address the sidecar connects from (${from}); a sidecar registers its own address`,
      );
    const owner = { namespace: identity.namespace, serviceAccount: identity.serviceAccount };
    const known = this.options.workloads.registered(registration.proxy);
    // (A sidecar without a config serves nothing, whatever it served before.)
    const serving =
      registration.version !== undefined &&
      known !== undefined &&
      known.ready !== false &&
      sameWorkload(known, workload);
    const warming = !serving && workload.ready !== false;
    try {
      this.options.workloads.register(
        registration.proxy,
        owner,
        warming ? { ...workload, ready: false } : workload,
      );
    } catch (error) {
      if (error instanceof DiscoveryError) throw error;
      throw new DiscoveryError(409, 'CAUSEWAY_DISCOVERY_WORKLOAD_TAKEN', (error as Error).message);
    }
    return warming ? { owner, workload, after: this.lastVersion } : undefined;
  }

  /** The caller's SPIFFE ID: a mesh certificate issued in this cluster, or a refusal. */
  private authenticate(request: FastifyRequest): SpiffeId {
    let identity;
    try {
      identity = peerIdentity(request.raw.socket as TLSSocket, {
        roots: this.options.roots(),
        trustDomain: this.options.trustDomain,
      });
    } catch (error) {
      throw new DiscoveryError(
        401,
        'CAUSEWAY_DISCOVERY_UNAUTHENTICATED',
        `a mesh client certificate is required: ${(error as Error).message}`,
      );
    }
    if (identity.cluster !== this.options.cluster) {
      throw new DiscoveryError(
        403,
        'CAUSEWAY_DISCOVERY_WRONG_CLUSTER',
        `${identity.spiffeId.uri} was issued in cluster ${identity.cluster}; this controller serves ${this.options.cluster}`,
      );
    }
    return identity.spiffeId;
  }
}

export { DiscoveryError };

/**
 * Whether two registrations of a workload are the same to callers: its name, labels (the
 * Services that select it), address and listener ports.
 */
function sameWorkload(a: Workload, b: Workload): boolean {
  const key = (w: Workload) =>
    JSON.stringify([
      w.name,
      Object.entries(w.labels).sort(([x], [y]) => x.localeCompare(y)),
      w.address,
      w.ports.map((p) => [p.port, p.appPort ?? p.port, p.name ?? '']),
    ]);
  return key(a) === key(b);
}

/**
 * Whether a sidecar's config lists its own workload, not ready yet (as it was registered
 * while warming), among some Service's local endpoints.
 */
function listsWorkload(config: ProxyConfig, workload: Workload): boolean {
  const ports = new Set(workload.ports.map((p) => p.port));
  return config.services.some((service) =>
    service.backends.some(
      (backend) =>
        backend.kind === 'local' &&
        backend.endpoints.some(
          (endpoint) =>
            !endpoint.ready &&
            endpoint.address === workload.address &&
            endpoint.ports.some((p) => ports.has(p.port)),
        ),
    ),
  );
}

/** A config as a debug page may show it: the private keys of HTTPS listeners left out. */
function redacted(config: ProxyConfig): ProxyConfig {
  if (!config.gateways.some((g) => g.listeners.some((l) => l.certificates?.length))) return config;
  return {
    ...config,
    gateways: config.gateways.map((gateway) => ({
      ...gateway,
      listeners: gateway.listeners.map((listener) =>
        listener.certificates
          ? {
              ...listener,
              certificates: listener.certificates.map((c) => ({
                certificate: c.certificate,
                privateKey: '(redacted)',
              })),
            }
          : listener,
      ),
    })),
  };
}
