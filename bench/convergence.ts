// Convergence: a ServiceExport created in east's API server -> the ServiceImport visible in
// west's API server, and -> a proxy in west acknowledging a config that routes to it.
// Real processes: two API servers, NATS, two federation-controller processes, and a
// discovery client with a mesh certificate. Baseline in the same run: one write and its
// watch event on west's API server alone (the floor any controller pays).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoreV1Api, CustomObjectsApi, Watch, type KubeConfig } from '@kubernetes/client-node';
import { DiscoveryClient } from '@causeway/discovery';
import { startEnvironment } from '@causeway/testing';
import {
  controllerSettings,
  initTrust,
  startControllerProcess,
  workloadCredentials,
  writeYaml,
  type ControllerProcess,
} from '../test/support/controller-process.ts';
import { report } from './report.ts';

const TD = 'bench.test';
const TOKEN = 'convergence-bench-join-token';

const percentile = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const round = (value: number): number => Math.round(value * 10) / 10;

/** Resolves the first time `predicate` holds for an object of a watched collection. */
class Waiter {
  private readonly waiting = new Map<string, () => void>();
  private readonly seen = new Set<string>();
  async watch(kubeConfig: KubeConfig, path: string, ready: (object: Record<string, unknown>) => boolean) {
    await new Watch(kubeConfig).watch(
      path,
      {},
      (_type: string, object: Record<string, unknown>) => {
        const name = (object.metadata as { name: string }).name;
        if (!ready(object) || this.seen.has(name)) return;
        this.seen.add(name);
        this.waiting.get(name)?.();
      },
      () => {},
    );
  }
  until(name: string, timeoutMs = 15_000): Promise<void> {
    if (this.seen.has(name)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not seen in ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(name, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

export async function convergenceBench(options: { json?: boolean; trials: number }): Promise<void> {
  process.stderr.write('starting two API servers, NATS and two federation controllers...\n');
  const env = await startEnvironment({ clusterNames: ['east', 'west'], nats: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-bench-convergence-'));
  const controllers: ControllerProcess[] = [];
  let proxy: DiscoveryClient | undefined;
  try {
    const directory = await initTrust(dir, TD, ['east', 'west'], env.nats!.url);
    for (const [index, cluster] of ['east', 'west'].entries()) {
      const settings = await writeYaml(path.join(dir, `${cluster}.yaml`), {
        ...controllerSettings({
          directory,
          cluster,
          trustDomain: TD,
          stateDir: path.join(dir, `state-${cluster}`),
          natsUrl: env.nats!.url,
          token: TOKEN,
        }),
        catalog: {
          kubeconfig: env.clusters[index]!.kubeconfigPath,
          gatewayAddresses: [`127.0.0.${index + 1}:15443`],
        },
      });
      controllers.push(await startControllerProcess(settings));
    }
    for (const controller of controllers) await controller.waitForLog('catalog attached to NATS');
    const [, west] = controllers as [ControllerProcess, ControllerProcess];
    const eastKube = env.clusters[0]!.kubeConfig();
    const westKube = env.clusters[1]!.kubeConfig();
    for (const config of [eastKube, westKube])
      await config.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'bench' } } });

    const imports = new Waiter();
    await imports.watch(
      westKube,
      '/apis/multicluster.x-k8s.io/v1alpha1/namespaces/bench/serviceimports',
      (object) => ((object.status as { clusters?: unknown[] } | undefined)?.clusters?.length ?? 0) > 0,
    );
    const configMaps = new Waiter();
    await configMaps.watch(westKube, '/api/v1/namespaces/bench/configmaps', () => true);

    const acked = new Map<string, () => void>();
    const ackedNames = new Set<string>();
    const servicesByVersion = new Map<number, string[]>();
    const credentials = await workloadCredentials({
      signingUrl: west.signingUrl,
      rootPem: (await directory.activeRoot()).certificatePem,
      trustDomain: TD,
      cluster: 'west',
      namespace: 'bench',
      serviceAccount: 'client',
      token: TOKEN,
    });
    proxy = new DiscoveryClient({
      controllerUrl: west.signingUrl,
      trustDomain: TD,
      cluster: 'west',
      proxy: 'sidecar~bench~client-0',
      kind: 'sidecar',
      credentials: () => credentials,
      onConfig: (message) => {
        servicesByVersion.set(
          message.version,
          message.config.services.filter((s) => s.backends.length > 0).map((s) => s.name),
        );
      },
      onAcked: (version) => {
        for (const name of servicesByVersion.get(version) ?? []) {
          if (ackedNames.has(name)) continue;
          ackedNames.add(name);
          acked.get(name)?.();
        }
        servicesByVersion.delete(version);
      },
    });
    await proxy.start();
    const untilAcked = (name: string): Promise<void> =>
      ackedNames.has(name)
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`proxy never acked ${name}`)), 15_000);
            acked.set(name, () => {
              clearTimeout(timer);
              resolve();
            });
          });

    const core = eastKube.makeApiClient(CoreV1Api);
    const custom = eastKube.makeApiClient(CustomObjectsApi);
    const westCore = westKube.makeApiClient(CoreV1Api);
    const importMs: number[] = [];
    const ackMs: number[] = [];
    const baselineMs: number[] = [];
    for (let i = 0; i < options.trials; i++) {
      const name = `svc-${i}`;
      await core.createNamespacedService({
        namespace: 'bench',
        body: { metadata: { name }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
      });
      const imported = imports.until(name);
      const ack = untilAcked(name);
      const start = performance.now();
      await custom.createNamespacedCustomObject({
        group: 'multicluster.x-k8s.io',
        version: 'v1alpha1',
        plural: 'serviceexports',
        namespace: 'bench',
        body: { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { name } },
      });
      await Promise.all([
        imported.then(() => importMs.push(performance.now() - start)),
        ack.then(() => ackMs.push(performance.now() - start)),
      ]);
      const baselineStart = performance.now();
      const seen = configMaps.until(`cm-${i}`);
      await westCore.createNamespacedConfigMap({
        namespace: 'bench',
        body: { metadata: { name: `cm-${i}` } },
      });
      await seen;
      baselineMs.push(performance.now() - baselineStart);
      if ((i + 1) % 10 === 0) process.stderr.write(`  ${i + 1}/${options.trials} trials\n`);
    }
    const result = {
      bench: 'convergence',
      trials: options.trials,
      import_p50_ms: round(percentile(importMs, 50)),
      import_p99_ms: round(percentile(importMs, 99)),
      proxy_ack_p50_ms: round(percentile(ackMs, 50)),
      proxy_ack_p99_ms: round(percentile(ackMs, 99)),
      baseline_write_watch_p50_ms: round(percentile(baselineMs, 50)),
      import_p50_vs_baseline: round(percentile(importMs, 50) / percentile(baselineMs, 50)),
    };
    report(
      result,
      [
        ['trials', String(result.trials)],
        ['ServiceExport -> ServiceImport in west, p50', `${result.import_p50_ms} ms`],
        ['ServiceExport -> ServiceImport in west, p99', `${result.import_p99_ms} ms`],
        ['ServiceExport -> proxy in west acked, p50', `${result.proxy_ack_p50_ms} ms`],
        ['ServiceExport -> proxy in west acked, p99', `${result.proxy_ack_p99_ms} ms`],
        ['baseline: one write + watch event, p50', `${result.baseline_write_watch_p50_ms} ms`],
        ['import p50 / baseline p50', `${result.import_p50_vs_baseline}x`],
      ],
      options.json ?? false,
    );
  } finally {
    await proxy?.stop();
    for (const controller of controllers) await controller.stop();
    await env.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
