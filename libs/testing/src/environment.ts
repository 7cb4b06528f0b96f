import { startKubeControlPlane, serviceCidrFor, type KubeControlPlane } from './kube.ts';
import { startNats, type NatsServer } from './nats.ts';
import { startPrometheus, type PrometheusServer, type ScrapeJob } from './prometheus.ts';
import { startRedis, type RedisServer } from './redis.ts';
import { TestbedError } from './errors.ts';

export interface EnvironmentOptions {
  /** Number of Kubernetes control planes (0 for none). */
  readonly clusters?: number;
  /** Cluster names; default `cluster-1`, `cluster-2`, … */
  readonly clusterNames?: readonly string[];
  readonly nats?: boolean;
  readonly redis?: boolean;
  /** Start Prometheus with these scrape jobs. */
  readonly prometheusJobs?: readonly ScrapeJob[];
  /** Called with a line of progress for a person watching. */
  readonly onProgress?: (line: string) => void;
}

/** Everything a multi-cluster test needs, started together and disposed together. */
export interface Environment {
  readonly clusters: readonly KubeControlPlane[];
  readonly nats?: NatsServer;
  readonly redis?: RedisServer;
  readonly prometheus?: PrometheusServer;
  /** Stops every server and removes their folders. Safe to call twice. */
  dispose(): Promise<void>;
}

export const MAX_CLUSTERS = 8;

export async function startEnvironment(options: EnvironmentOptions): Promise<Environment> {
  const count = options.clusterNames?.length ?? options.clusters ?? 0;
  if (!Number.isInteger(count) || count < 0 || count > MAX_CLUSTERS) {
    throw new TestbedError(
      'CAUSEWAY_TESTBED_BAD_OPTION',
      `clusters must be an integer from 0 to ${MAX_CLUSTERS}, got ${count}`,
    );
  }
  const names = options.clusterNames ?? Array.from({ length: count }, (_, i) => `cluster-${i + 1}`);
  if (new Set(names).size !== names.length) {
    throw new TestbedError(
      'CAUSEWAY_TESTBED_BAD_OPTION',
      `cluster names must be unique: ${names.join(', ')}`,
    );
  }
  const progress = options.onProgress ?? (() => {});
  const disposers: Array<() => Promise<void>> = [];
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    const errors: unknown[] = [];
    for (const stop of disposers.reverse()) {
      try {
        await stop();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'some test-bed servers did not stop cleanly');
  };

  const timed = async <T>(what: string, start: () => Promise<T>): Promise<T> => {
    const began = Date.now();
    progress(`starting ${what}...`);
    const result = await start();
    progress(`${what} ready in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    return result;
  };

  try {
    const natsPromise = options.nats ? timed('nats-server', () => startNats()) : undefined;
    const redisPromise = options.redis ? timed('redis-server', () => startRedis()) : undefined;
    const clusterPromises = names.map((name, index) =>
      timed(`cluster ${name} (etcd + kube-apiserver + CRDs)`, () =>
        startKubeControlPlane({ name, serviceCidr: serviceCidrFor(index) }),
      ),
    );
    // Register every server that starts, even if a sibling fails, so dispose() stops it.
    const settled = await Promise.allSettled([natsPromise, redisPromise, ...clusterPromises]);
    for (const outcome of settled) {
      if (outcome.status === 'fulfilled' && outcome.value) {
        const server = outcome.value;
        disposers.push(() => server.dispose());
      }
    }
    const failure = settled.find((outcome) => outcome.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
    const nats = await natsPromise;
    const redis = await redisPromise;
    const clusters = await Promise.all(clusterPromises);
    let prometheus: PrometheusServer | undefined;
    if (options.prometheusJobs) {
      prometheus = await timed('prometheus', () => startPrometheus({ jobs: options.prometheusJobs! }));
      const started = prometheus;
      disposers.push(() => started.dispose());
    }
    return { clusters, nats, redis, prometheus, dispose };
  } catch (error) {
    await dispose().catch(() => {});
    throw error;
  }
}
