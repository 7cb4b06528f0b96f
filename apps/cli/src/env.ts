import { setInterval as every } from 'node:timers';
import { MAX_CLUSTERS, startEnvironment, type Environment } from '@causeway/testing';
import { formatTable } from './table.ts';

export interface EnvUpOptions {
  readonly clusters?: number;
  readonly names?: readonly string[];
  readonly nats: boolean;
  readonly redis: boolean;
  readonly json: boolean;
  /** Title line for the human output. */
  readonly title?: string;
  /** Extra lines after the table. */
  readonly notes?: readonly string[];
}

/** What `env up --json` prints: enough for a script to reach every server. */
export interface EnvironmentDescription {
  clusters: Array<{
    name: string;
    server: string;
    kubeconfig: string;
    serviceCidr: string;
    etcd: string;
    pids: number[];
  }>;
  nats?: { url: string; monitorUrl: string; pid: number };
  redis?: { url: string; pid: number };
  startedInMs: number;
}

export function describeEnvironment(env: Environment, startedInMs: number): EnvironmentDescription {
  const pidOf = (proc: { pid: number | undefined }): number => proc.pid ?? -1;
  return {
    clusters: env.clusters.map((cluster) => {
      const { apiserver, etcd } = cluster.processes();
      return {
        name: cluster.name,
        server: cluster.server,
        kubeconfig: cluster.kubeconfigPath,
        serviceCidr: cluster.serviceCidr,
        etcd: cluster.etcdUrl,
        pids: [pidOf(apiserver), pidOf(etcd)],
      };
    }),
    ...(env.nats
      ? { nats: { url: env.nats.url, monitorUrl: env.nats.monitorUrl, pid: pidOf(env.nats.process()) } }
      : {}),
    ...(env.redis ? { redis: { url: env.redis.url, pid: pidOf(env.redis.process()) } } : {}),
    startedInMs,
  };
}

function humanReport(description: EnvironmentDescription, options: EnvUpOptions): string {
  const rows: string[][] = [];
  for (const cluster of description.clusters) {
    rows.push(['kube-apiserver', cluster.name, cluster.server, `kubeconfig ${cluster.kubeconfig}`]);
    rows.push(['etcd', cluster.name, cluster.etcd, `service CIDR ${cluster.serviceCidr}`]);
  }
  if (description.nats)
    rows.push(['nats-server', '-', description.nats.url, `monitor ${description.nats.monitorUrl}`]);
  if (description.redis) rows.push(['redis-server', '-', description.redis.url, '']);
  const lines = [
    `${options.title ?? 'Causeway local environment'} (started in ${(description.startedInMs / 1000).toFixed(1)} s)`,
    '',
    formatTable(['component', 'cluster', 'endpoint', 'details'], rows),
    '',
  ];
  const first = description.clusters[0];
  if (first) lines.push(`Try:  kubectl --kubeconfig ${first.kubeconfig} get serviceexports -A`);
  lines.push(...(options.notes ?? []));
  lines.push('Press Ctrl-C to stop everything.');
  return lines.join('\n');
}

/**
 * Starts the environment, prints how to reach it, and keeps it up until SIGINT/SIGTERM,
 * then stops every server it started. Resolves with the exit code.
 */
export async function envUp(options: EnvUpOptions): Promise<number> {
  const progress = (line: string): void => {
    process.stderr.write(`causeway: ${line}\n`);
  };
  const began = Date.now();
  let env: Environment;
  let stopping: Promise<number> | undefined;
  let interrupted = false;
  const earlyStop = (): void => {
    interrupted = true;
  };
  process.once('SIGINT', earlyStop);
  process.once('SIGTERM', earlyStop);
  try {
    env = await startEnvironment({
      clusters: options.clusters,
      clusterNames: options.names,
      nats: options.nats,
      redis: options.redis,
      onProgress: progress,
    });
  } catch (error) {
    process.stderr.write(
      `causeway: the environment did not start: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  } finally {
    process.off('SIGINT', earlyStop);
    process.off('SIGTERM', earlyStop);
  }
  const stop = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      progress(`${signal}: stopping every server...`);
      try {
        await env.dispose();
        progress('stopped; no process left behind.');
        return 0;
      } catch (error) {
        progress(`some servers did not stop cleanly: ${String(error)}`);
        return 1;
      }
    })();
    return stopping;
  };
  if (interrupted) return await stop('interrupted while starting');

  const description = describeEnvironment(env, Date.now() - began);
  process.stdout.write(
    options.json ? `${JSON.stringify(description)}\n` : `${humanReport(description, options)}\n`,
  );
  return await new Promise<number>((resolve) => {
    const keepAlive = every(() => {}, 60_000);
    const onSignal = (signal: NodeJS.Signals): void => {
      clearInterval(keepAlive);
      stop(signal).then(resolve, () => resolve(1));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

export { MAX_CLUSTERS };
