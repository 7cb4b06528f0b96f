import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { requireSystemServer } from './binaries.ts';
import { TestbedError } from './errors.ts';
import { ManagedProcess, looksLikePortClash, startWithPortRetry } from './managed-process.ts';
import { freePort } from './ports.ts';
import { httpGet } from './probe.ts';
import { makeTempDir } from './temp-dir.ts';

/** One Prometheus scrape job. */
export interface ScrapeJob {
  readonly jobName: string;
  /** `host:port` targets. */
  readonly targets: readonly string[];
  readonly metricsPath?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface PrometheusOptions {
  /** Scrape jobs for a configuration written here (unless `configFile` is given). */
  readonly jobs?: readonly ScrapeJob[];
  /**
   * A configuration file used as it is, instead of `jobs` (one of the repository's, set up
   * as documented): relative paths in it (file_sd) are read beside it, and `${VAR}` in its
   * external labels are taken from `env`.
   */
  readonly configFile?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Scrape and evaluation interval; short by default so tests see samples quickly. */
  readonly scrapeInterval?: string;
  readonly startTimeoutMs?: number;
}

/** One sample of an instant-vector query result. */
export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

/** A running Prometheus with its own TSDB folder. */
export interface PrometheusServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly process: () => ManagedProcess;
  /** Instant query; rejects on a PromQL error with Prometheus's own message. */
  query(promql: string): Promise<PromSample[]>;
  /** Polls `query` until `accept` returns true, or fails after `timeoutMs`. */
  waitForQuery(
    promql: string,
    accept: (samples: PromSample[]) => boolean,
    timeoutMs?: number,
  ): Promise<PromSample[]>;
  dispose(): Promise<void>;
}

interface QueryResponse {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const binary = requireSystemServer('prometheus');
  const temp = await makeTempDir('prometheus');
  const interval = options.scrapeInterval ?? '1s';
  let configFile = options.configFile;
  if (!configFile) {
    configFile = path.join(temp.path, 'prometheus.yml');
    await writeFile(
      configFile,
      stringify({
        global: { scrape_interval: interval, evaluation_interval: interval },
        scrape_configs: (options.jobs ?? []).map((job) => ({
          job_name: job.jobName,
          metrics_path: job.metricsPath ?? '/metrics',
          static_configs: [{ targets: [...job.targets], labels: job.labels ?? {} }],
        })),
      }),
    );
  }
  let port = 0;
  let current: ManagedProcess | undefined;
  await startWithPortRetry(async () => {
    port = await freePort();
    current = await ManagedProcess.startReady(
      {
        name: 'prometheus',
        command: binary,
        args: [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${path.join(temp.path, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--storage.tsdb.retention.time=2h',
          '--web.enable-lifecycle',
          ...(options.configFile ? ['--enable-feature=expand-external-labels'] : []),
        ],
        ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
        logFile: path.join(temp.path, 'prometheus.log'),
      },
      async () => (await httpGet(`http://127.0.0.1:${port}/-/ready`)).status === 200,
      options.startTimeoutMs ?? 20_000,
    );
  }, looksLikePortClash);

  const url = `http://127.0.0.1:${port}`;
  const query = async (promql: string): Promise<PromSample[]> => {
    const response = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const parsed = JSON.parse(response.body) as QueryResponse;
    if (parsed.status !== 'success' || !parsed.data) {
      throw new TestbedError(
        'CAUSEWAY_TESTBED_BAD_OPTION',
        `PromQL '${promql}' failed: ${parsed.error ?? response.status}`,
      );
    }
    if (parsed.data.resultType !== 'vector') {
      throw new TestbedError(
        'CAUSEWAY_TESTBED_BAD_OPTION',
        `PromQL '${promql}' returned a ${parsed.data.resultType}`,
      );
    }
    return parsed.data.result.map((entry) => ({ metric: entry.metric, value: Number(entry.value[1]) }));
  };
  return {
    url,
    process: () => current!,
    query,
    waitForQuery: async (promql, accept, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      let last: PromSample[] = [];
      while (Date.now() < deadline) {
        last = await query(promql);
        if (accept(last)) return last;
        await sleep(250);
      }
      throw new TestbedError(
        'CAUSEWAY_TESTBED_NOT_READY',
        `PromQL '${promql}' did not give the expected result in ${timeoutMs} ms; last: ${JSON.stringify(last)}`,
      );
    },
    dispose: async () => {
      await current?.stop();
      await temp.remove();
    },
  };
}
