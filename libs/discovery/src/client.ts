import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { Backoff, StateFile } from '@causeway/config';
import { checkControllerIdentity } from '@causeway/identity';
import { KEEPALIVE_MS } from './server.ts';
import { snapshotMessageSchema, type ProxyKind, type SnapshotMessage, type Workload } from './snapshot.ts';

/** The mesh certificate a proxy connects with. */
export interface ClientCredentials {
  readonly privateKeyPem: string;
  /** PEM: leaf, then the cluster intermediate. */
  readonly certificateChainPem: string;
  readonly roots: readonly string[];
}

export interface DiscoveryClientOptions {
  /** `https://host:port` of this cluster's federation controller. */
  readonly controllerUrl: string;
  readonly trustDomain: string;
  readonly cluster: string;
  readonly proxy: string;
  readonly kind: ProxyKind;
  /** File mode, sidecars: the workload beside this proxy, registered with every connection. */
  readonly workload?: Workload;
  /** The current credentials (they are renewed; each connection takes the newest). */
  readonly credentials: () => ClientCredentials | undefined;
  /** Applies a complete snapshot; if it throws, the version is not acknowledged. */
  readonly onConfig: (message: SnapshotMessage) => void | Promise<void>;
  /** Called after the controller accepted the acknowledgement of a version. */
  readonly onAcked?: (version: number) => void;
  /** Where the last applied snapshot is kept, so a restarted proxy starts from it. */
  readonly statePath?: string;
  readonly onError?: (error: Error) => void;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

const FIRST_RETRY_MS = 250;
/**
 * The longest a proxy waits between attempts to reach its controller. A restarted
 * controller keeps the workloads it had registered for several times this long (file
 * mode), so that none is dropped while its sidecar is still coming back.
 */
export const PROXY_RECONNECT_MAX_MS = 5_000;

/**
 * The proxy side of the discovery API: connects to its controller over mTLS, registers,
 * applies each complete snapshot in order and acknowledges its version. When the
 * controller is gone it keeps the last snapshot and reconnects with backoff.
 */
export class DiscoveryClient {
  private latest: SnapshotMessage | undefined;
  private stopped = false;
  private request: ReturnType<typeof https.request> | undefined;
  private agent: https.Agent | undefined;
  private applying: Promise<void> = Promise.resolve();
  private readonly stateFile: StateFile<SnapshotMessage> | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  connected = false;

  constructor(private readonly options: DiscoveryClientOptions) {
    this.stateFile = options.statePath ? new StateFile(options.statePath) : undefined;
  }

  /** The snapshot in use. */
  current(): SnapshotMessage | undefined {
    return this.latest;
  }

  /** Loads the persisted snapshot (if any, and complete) and starts connecting. */
  async start(): Promise<void> {
    try {
      const saved = await this.stateFile?.read();
      if (saved) {
        const message = snapshotMessageSchema.parse(saved) as SnapshotMessage;
        await this.options.onConfig(message);
        this.latest = message;
        this.options.log?.('started from the last saved config', { version: message.version });
      }
    } catch (error) {
      this.options.onError?.(
        new Error(`the saved config is unusable, waiting for the controller: ${String(error)}`),
      );
    }
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.request?.destroy();
    this.wake?.();
    await this.loop;
    this.agent?.destroy();
    await this.applying;
    await this.stateFile?.flush().catch(() => {});
  }

  /** Drops the current connection (a new one follows); used after new credentials. */
  reconnect(): void {
    this.request?.destroy(new Error('reconnecting'));
  }

  private async run(): Promise<void> {
    const backoff = new Backoff({ firstMs: FIRST_RETRY_MS, maxMs: PROXY_RECONNECT_MAX_MS });
    while (!this.stopped) {
      const credentials = this.options.credentials();
      if (credentials) {
        const started = Date.now();
        try {
          await this.connectOnce(credentials);
        } catch (error) {
          if (!this.stopped) this.options.onError?.(error as Error);
        }
        this.connected = false;
        if (Date.now() - started > 10_000) backoff.reset();
      }
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, backoff.next()).unref();
      });
    }
  }

  private tlsOptions(credentials: ClientCredentials) {
    return {
      key: credentials.privateKeyPem,
      cert: credentials.certificateChainPem,
      ca: [...credentials.roots],
      checkServerIdentity: checkControllerIdentity({
        trustDomain: this.options.trustDomain,
        cluster: this.options.cluster,
        roots: credentials.roots,
      }),
    };
  }

  /** One stream: resolves or rejects when it ends. */
  private connectOnce(credentials: ClientCredentials): Promise<void> {
    this.agent?.destroy();
    this.agent = new https.Agent({ ...this.tlsOptions(credentials), keepAlive: true, maxSockets: 2 });
    const body = JSON.stringify({
      proxy: this.options.proxy,
      kind: this.options.kind,
      ...(this.latest ? { version: this.latest.version } : {}),
      ...(this.options.workload ? { workload: this.options.workload } : {}),
    });
    return new Promise<void>((resolve, reject) => {
      const request = https.request(new URL('/v1/discovery/stream', this.options.controllerUrl), {
        method: 'POST',
        agent: false,
        ...this.tlsOptions(credentials),
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      });
      this.request = request;
      let idle: NodeJS.Timeout | undefined;
      const resetIdle = (): void => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(
          () => request.destroy(new Error('the discovery stream went silent')),
          KEEPALIVE_MS * 3,
        );
        idle.unref();
      };
      request.on('error', (error) => {
        if (idle) clearTimeout(idle);
        reject(error);
      });
      request.on('response', (response: IncomingMessage) => {
        if (response.statusCode !== 200) {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            reject(
              new Error(
                `the controller refused the discovery stream (${response.statusCode}): ${Buffer.concat(chunks).toString('utf8')}`,
              ),
            ),
          );
          return;
        }
        this.connected = true;
        this.options.log?.('connected to the controller', { proxy: this.options.proxy });
        resetIdle();
        const lines = createInterface({ input: response, crlfDelay: Infinity });
        lines.on('line', (line) => {
          resetIdle();
          if (line.trim() === '') return;
          this.receive(line);
        });
        // A stream cut by the controller going away ends this connection, nothing more
        // (readline passes the response's error on to its own listeners).
        response.on('error', () => {});
        lines.on('error', () => {});
        response.on('close', () => {
          if (idle) clearTimeout(idle);
          resolve();
        });
      });
      request.end(body);
    });
  }

  /**
   * Checks a whole snapshot, applies it after any earlier one, then acknowledges it. The
   * stream's order is the order of application (versions only name snapshots).
   */
  private receive(line: string): void {
    let message: SnapshotMessage;
    try {
      message = snapshotMessageSchema.parse(JSON.parse(line)) as SnapshotMessage;
    } catch (error) {
      this.options.onError?.(new Error(`refused an incomplete or malformed snapshot: ${String(error)}`));
      return;
    }
    this.applying = this.applying.then(async () => {
      try {
        await this.options.onConfig(message);
      } catch (error) {
        this.options.onError?.(new Error(`snapshot ${message.version} was not applied: ${String(error)}`));
        return;
      }
      this.latest = message;
      this.stateFile?.write(message);
      await this.acknowledge(message.version, 0);
    });
  }

  /**
   * Acknowledges a version; a failed ack is tried again four more times (after 0.5-1, 1-2,
   * 2-4 and 4-8 s: `Backoff`) while it is still the latest: the controller keeps a new
   * workload not ready until it hears it.
   */
  private acknowledge(
    version: number,
    attempt: number,
    backoff = new Backoff({ firstMs: 1_000, maxMs: 8_000 }),
  ): Promise<void> {
    return this.ack(version).then(
      () => this.options.onAcked?.(version),
      (error: unknown) => {
        this.options.onError?.(error as Error);
        if (attempt >= 4 || this.stopped) return;
        setTimeout(() => {
          if (!this.stopped && this.latest?.version === version)
            void this.acknowledge(version, attempt + 1, backoff);
        }, backoff.next()).unref();
      },
    );
  }

  private ack(version: number): Promise<void> {
    const body = JSON.stringify({ proxy: this.options.proxy, version });
    return new Promise<void>((resolve, reject) => {
      const request = https.request(new URL('/v1/discovery/ack', this.options.controllerUrl), {
        method: 'POST',
        agent: this.agent,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      });
      request.setTimeout(5_000, () => request.destroy(new Error('ack timed out')));
      request.on('error', reject);
      request.on('response', (response) => {
        response.on('error', reject);
        response.resume();
        response.on('end', () =>
          response.statusCode === 204
            ? resolve()
            : reject(new Error(`the controller refused ack ${version} (${response.statusCode})`)),
        );
      });
      request.end(body);
    });
  }
}
