import http from 'node:http';

/** One request of a steady load. */
export interface LoadSample {
  /** When it was sent (ms since the epoch). */
  readonly at: number;
  readonly ms: number;
  /** The HTTP status, or 0 when no answer came. */
  readonly status: number;
  readonly error?: string;
}

/** What a window of a steady load came to. */
export interface LoadSummary {
  readonly sent: number;
  readonly failed: number;
  readonly p99Ms: number;
  /** The first few failures, for a message. */
  readonly failures: readonly string[];
}

/**
 * A fixed rate of HTTP/1.1 GETs to one authority through a sidecar's outbound port, over
 * kept-alive connections, each with its own timeout: what the chaos tests and the chaos
 * benchmark hold steady while they break things. A request fails when it gets no 2xx.
 */
export class SteadyLoad {
  private readonly samples: LoadSample[] = [];
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly options: {
      readonly port: number;
      readonly host?: string;
      readonly authority: string;
      readonly path?: string;
      readonly ratePerSecond: number;
      readonly timeoutMs: number;
    },
  ) {}

  static start(options: {
    /** The sidecar's outbound port, on `host` (default 127.0.0.1). */
    port: number;
    host?: string;
    authority: string;
    path?: string;
    /** Default 50. */
    ratePerSecond?: number;
    /** Default 5 s. */
    timeoutMs?: number;
  }): SteadyLoad {
    const load = new SteadyLoad({ ratePerSecond: 50, timeoutMs: 5_000, ...options });
    load.timer = setInterval(() => load.send(), 1_000 / load.options.ratePerSecond);
    return load;
  }

  private send(): void {
    const at = Date.now();
    const done = new Promise<void>((resolve) => {
      let finished = false;
      const deadline: { timer?: NodeJS.Timeout } = {};
      // Once per request: a request cut after its head fails on both the request and the
      // response, and counts once.
      const finish = (status: number, error?: string): void => {
        if (finished) return;
        finished = true;
        clearTimeout(deadline.timer);
        this.samples.push({ at, ms: Date.now() - at, status, ...(error ? { error } : {}) });
        resolve();
      };
      let request: http.ClientRequest;
      try {
        request = http.get(
          {
            host: this.options.host ?? '127.0.0.1',
            port: this.options.port,
            path: this.options.path ?? '/',
            headers: { host: this.options.authority },
            agent: this.agent,
          },
          (response) => {
            const status = response.statusCode!;
            let body = '';
            response.setEncoding('utf8');
            // A failure's body says why (the proxies answer in plain text).
            response.on('data', (chunk: string) => {
              if (status >= 300 && body.length < 200) body += chunk;
            });
            response.on('end', () =>
              finish(
                status,
                status >= 200 && status < 300 ? undefined : `HTTP ${status} ${body.trim().slice(0, 200)}`,
              ),
            );
            response.on('error', (error) => finish(0, error.message));
          },
        );
      } catch (error) {
        return finish(0, (error as Error).message);
      }
      // The whole exchange, from the moment it is sent (waiting for a socket included), has
      // the timeout: a trickling answer or a queue behind a hung peer cannot stretch it.
      deadline.timer = setTimeout(
        () => request.destroy(new Error(`no answer in ${this.options.timeoutMs} ms`)),
        this.options.timeoutMs,
      );
      request.on('error', (error) => finish(0, error.message));
    });
    this.inFlight.add(done);
    void done.then(() => this.inFlight.delete(done));
  }

  /**
   * Resolves once every request sent so far has finished (each within its timeout), so that
   * a summary taken then counts a request stalled by a fault as failed, not as missing.
   */
  async settled(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  /**
   * The summary of the finished requests sent up to `to` (ms since the epoch), which are
   * then forgotten: what a load that runs for days reports window by window.
   */
  take(to = Date.now()): LoadSummary {
    const summary = this.summary(0, to);
    const kept = this.samples.filter((s) => s.at > to);
    this.samples.length = 0;
    this.samples.push(...kept);
    return summary;
  }

  /** The requests sent from `from` (ms since the epoch) to `to` that have finished. */
  summary(from = 0, to = Infinity): LoadSummary {
    const window = this.samples.filter((s) => s.at >= from && s.at <= to);
    const failed = window.filter((s) => s.status < 200 || s.status >= 300);
    const times = window.map((s) => s.ms).sort((a, b) => a - b);
    return {
      sent: window.length,
      failed: failed.length,
      p99Ms: times.length ? times[Math.min(times.length - 1, Math.ceil(times.length * 0.99) - 1)]! : 0,
      failures: failed
        .slice(0, 5)
        .map((s) => `${new Date(s.at).toISOString()} ${s.error ?? `HTTP ${s.status}`}`),
    };
  }

  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<LoadSummary> {
    clearInterval(this.timer);
    await Promise.all(this.inFlight);
    this.agent.destroy();
    return this.summary();
  }
}
