// A controller crash costs no request: two clusters on one machine, every part a real
// process (NATS, a controller and an east-west gateway per cluster, sidecars, sample apps),
// a steady load from west to a service only east has. East's controller reads a folder
// (file mode, its sidecars register their workloads) in one suite and a real API server
// (Kubernetes mode, endpoints from EndpointSlices) in the other. Killed with SIGKILL and
// restarted, or stopped for 60 s, a controller on either side fails no request; the
// restarted one listens where its proxies expect it, and drops no registered workload.
// NATS stopped for 120 s fails no request either, is reported within 5 s, and heartbeats
// are current again after it returns.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { CoreV1Api, DiscoveryV1Api } from '@kubernetes/client-node';
import {
  connectedProxies,
  exportedService,
  LocalFederation,
  type SidecarProcess,
} from '@causeway/cli/local-federation';
import { startHttpEcho, type SampleApp } from '@causeway/cli/sample-apps';
import { SteadyLoad } from '@causeway/cli/steady-load';
import { eventually, startEnvironment, type Environment } from '@causeway/testing';
import { createServiceExport } from '../support/kube-objects.ts';

const CART = 'cart.shop.svc.clusterset.local';

/** The proxies a controller has had connect to it (by the log line), by proxy id. */
for (const mode of ['files', 'kubernetes'] as const) {
  describe(`east in ${mode} mode`, () => {
    let env: Environment;
    let dir: string;
    let federation: LocalFederation;
    let client: SidecarProcess;
    let app: SampleApp | undefined;
    let load: SteadyLoad;

    before(async () => {
      env = await startEnvironment({
        nats: true,
        ...(mode === 'kubernetes' ? { clusterNames: ['east'] } : {}),
      });
      dir = await mkdtemp(path.join(os.tmpdir(), `causeway-restart-${mode}-`));
      federation = await LocalFederation.start({
        dir,
        natsUrl: env.nats!.url,
        clusters: ['east', 'west'],
        heartbeatInterval: '500ms',
        // The demo's grace: a sidecar gone for 1 s is gone. A restart must not count as that.
        workloadGrace: '1s',
        ...(mode === 'kubernetes' ? { kubeconfigs: { east: env.clusters[0]!.kubeconfigPath } } : {}),
      });
      if (mode === 'files') {
        await federation.apply('east', 'cart.yaml', exportedService('shop', 'cart', 80, 'http'));
        await federation.startSampleWorkload('east', 'shop', 'cart', 'http');
      } else {
        // What a kubelet and the EndpointSlice controller would hold for a pod behind a
        // sidecar. The API server refuses loopback endpoint addresses: the pod's address is
        // this machine's own.
        const podIp = Object.values(os.networkInterfaces())
          .flat()
          .find((address) => address && address.family === 'IPv4' && !address.internal)?.address;
        assert.ok(
          podIp,
          'this test needs a non-loopback IPv4 address on this machine (an EndpointSlice may not hold 127.0.0.1)',
        );
        app = await startHttpEcho({ service: 'cart', cluster: 'east', instance: 'cart-east' });
        const sidecar = await federation.startSidecar('east', {
          namespace: 'shop',
          serviceAccount: 'cart',
          inboundHost: podIp,
          inbound: [{ name: 'http', appPort: app.port }],
        });
        const kube = env.clusters[0]!.kubeConfig();
        const core = kube.makeApiClient(CoreV1Api);
        await core.createNamespace({ body: { metadata: { name: 'shop' } } });
        await core.createNamespacedService({
          namespace: 'shop',
          body: {
            metadata: { name: 'cart' },
            spec: { selector: { app: 'cart' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
          },
        });
        await core.createNamespacedPod({
          namespace: 'shop',
          body: {
            metadata: { name: 'cart-east', labels: { app: 'cart' } },
            spec: { serviceAccountName: 'cart', containers: [{ name: 'app', image: 'cart:demo' }] },
          },
        });
        await kube.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
          namespace: 'shop',
          body: {
            metadata: { name: 'cart-east', labels: { 'kubernetes.io/service-name': 'cart' } },
            addressType: 'IPv4',
            endpoints: [
              {
                addresses: [podIp],
                conditions: { ready: true },
                targetRef: { kind: 'Pod', namespace: 'shop', name: 'cart-east' },
              },
            ],
            ports: [{ name: 'http', port: sidecar.inboundPorts[0]!, protocol: 'TCP' }],
          },
        });
        await createServiceExport(kube, 'shop', 'cart');
      }
      client = await federation.startSidecar('west', {
        namespace: 'shop',
        serviceAccount: 'web',
        accessLog: false,
      });
      await eventually(async () => {
        const probe = SteadyLoad.start({ port: client.outboundPort, authority: CART, ratePerSecond: 20 });
        await new Promise((resolve) => setTimeout(resolve, 300));
        const summary = await probe.stop();
        assert.ok(
          summary.sent > 0 && summary.failed === 0,
          `west cannot reach cart yet: ${summary.failures[0]}`,
        );
      }, 30_000);
      load = SteadyLoad.start({ port: client.outboundPort, authority: CART, ratePerSecond: 50 });
    });

    after(async () => {
      await load?.stop();
      await federation?.stop();
      await app?.close();
      await env?.dispose();
      await rm(dir, { recursive: true, force: true });
    });

    /**
     * Restarts a cluster's controller under the load; resolves once every proxy it had has
     * connected to the new process and the load has run 2 s more; no request may fail.
     */
    async function restart(cluster: string, options: { signal?: NodeJS.Signals; downMs?: number } = {}) {
      const before = federation.cluster(cluster);
      const from = Date.now();
      const { controller, url } = await federation.restartController(cluster, {
        ...options,
        awaitProxies: true,
      });
      assert.equal(url, before.controllerUrl, 'the restarted controller listens where its proxies expect it');
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await load.settled();
      const summary = load.summary(from);
      assert.ok(summary.sent > 0, 'the load sent nothing');
      assert.equal(
        summary.failed,
        0,
        `${summary.failed} of ${summary.sent} requests failed: ${summary.failures.join('; ')}`,
      );
      const dropped = controller.logs.filter(
        (entry) => entry.msg === 'workload removed (its sidecar is gone)',
      );
      assert.deepEqual(
        dropped,
        [],
        'the restarted controller dropped a workload whose sidecar was coming back',
      );
      return summary;
    }

    test('the buckets the controllers created refuse rollups, purges and message deletes', async () => {
      const connection = await connect({ servers: env.nats!.url });
      try {
        const jsm = await jetstreamManager(connection);
        for (const stream of ['KV_causeway-catalog', 'KV_causeway-trust']) {
          const { config } = await jsm.streams.info(stream);
          assert.deepEqual(
            [config.allow_rollup_hdrs, config.deny_purge, config.deny_delete],
            [false, true, true],
            stream,
          );
        }
      } finally {
        await connection.close();
      }
    });

    test("SIGKILL of the serving cluster's controller and its restart fail no request", async () => {
      await restart('east');
    });

    test("SIGKILL of the calling cluster's controller and its restart fail no request", async () => {
      await restart('west');
    });

    test("the serving cluster's controller stopped for 60 s fails no request", async () => {
      const summary = await restart('east', { signal: 'SIGTERM', downMs: 60_000 });
      assert.ok(summary.sent > 2_500, `only ${summary.sent} requests were sent while it was down`);
    });

    // Once is enough: NATS is the same in both modes.
    if (mode === 'files')
      test('NATS stopped for 120 s fails no request; the controllers say so within 5 s, then catch up', async () => {
        type Status = {
          nats: { connected: boolean; reason: string };
          peers: Array<{ cluster: string; stale: boolean; lastHeartbeat?: string }>;
        };
        const status = async (cluster: string): Promise<Status> =>
          (await (
            await fetch(`${federation.cluster(cluster).controller.adminUrl}/debug/catalog`)
          ).json()) as Status;
        const from = Date.now();
        await env.nats!.stop();
        const stoppedAt = Date.now();
        for (const cluster of ['east', 'west'])
          await eventually(async () => assert.equal((await status(cluster)).nats.connected, false), 5_000);
        assert.ok(Date.now() - stoppedAt <= 5_500, 'NATS down was not reported within 5 s');
        await new Promise((resolve) => setTimeout(resolve, 120_000 - (Date.now() - stoppedAt)));
        await env.nats!.restart();
        const restartedAt = Date.now();
        // Reconnected, and every cluster's heartbeat current again (newer than the restart).
        for (const cluster of ['east', 'west'])
          await eventually(async () => {
            const now = await status(cluster);
            assert.equal(now.nats.connected, true, `${cluster}: ${now.nats.reason}`);
            for (const peer of now.peers) {
              assert.equal(peer.stale, false, `${cluster} sees ${peer.cluster} stale`);
              assert.ok(
                Date.parse(peer.lastHeartbeat ?? '') > restartedAt,
                `${cluster}: no new heartbeat of ${peer.cluster}`,
              );
            }
          }, 15_000);
        await load.settled();
        const summary = load.summary(from);
        assert.ok(summary.sent > 5_000, `only ${summary.sent} requests were sent`);
        assert.equal(
          summary.failed,
          0,
          `${summary.failed} of ${summary.sent} failed: ${summary.failures.join('; ')}`,
        );
      });

    // Last: the load's sidecar is replaced.
    test('a sidecar restarted while its controller is down starts from its saved certificate and config', async () => {
      await federation.cluster('west').controller.stop('SIGKILL');
      await load.stop();
      client = await federation.restartSidecar(client);
      assert.ok(
        client.logs.some((entry) => entry.msg === 'started from the last saved config'),
        'the sidecar did not start from its saved config',
      );
      const probe = SteadyLoad.start({ port: client.outboundPort, authority: CART, ratePerSecond: 50 });
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const summary = await probe.stop();
      assert.ok(summary.sent > 50, `only ${summary.sent} requests were sent`);
      assert.equal(
        summary.failed,
        0,
        `${summary.failed} of ${summary.sent} failed: ${summary.failures.join('; ')}`,
      );
      // And the controller, back, has it again.
      const { controller } = await federation.restartController('west');
      await eventually(async () => {
        const proxies = [...connectedProxies(controller)];
        assert.ok(
          proxies.some((proxy) => proxy.startsWith('sidecar~shop~')),
          proxies.join(', '),
        );
      }, 30_000);
      load = SteadyLoad.start({ port: client.outboundPort, authority: CART, ratePerSecond: 50 });
    });
  });
}
