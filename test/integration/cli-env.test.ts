// `causeway env up` starts real servers, prints how to reach them, and on Ctrl-C (SIGINT)
// stops every one of them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { connect } from '@nats-io/transport-node';
import { repoRoot } from '@causeway/testing';

const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface EnvDescription {
  clusters: Array<{ name: string; kubeconfig: string; serviceCidr: string; pids: number[] }>;
  nats?: { url: string; pid: number };
  redis?: { url: string; pid: number };
}

/**
 * Runs `causeway env up --json …`, hands its description to `check`, then sends Ctrl-C and
 * checks that every server it started is gone, and its folder too.
 */
async function envUp(args: string[], check: (description: EnvDescription) => Promise<void>): Promise<void> {
  const child = spawn(process.execPath, [cli, 'env', 'up', ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    void exited.then((code) => reject(new Error(`env up exited ${code} before printing: ${stderr}`)));
  });
  const description = JSON.parse(firstLine) as EnvDescription;
  try {
    for (const cluster of description.clusters)
      assert.match(stderr, new RegExp(`cluster ${cluster.name} .* ready in`));
    await check(description);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /stopped; no process left behind/);
  const pids = [
    ...description.clusters.flatMap((c) => c.pids),
    ...(description.nats ? [description.nats.pid] : []),
    ...(description.redis ? [description.redis.pid] : []),
  ];
  assert.deepEqual(pids.filter(alive), [], 'server processes still running after Ctrl-C');
  assert.equal(
    existsSync(path.dirname(description.clusters[0]!.kubeconfig)),
    false,
    'temp folder left behind',
  );
}

/** The namespaces of a cluster, through its kubeconfig. */
async function namespaces(kubeconfig: string): Promise<string[]> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfig);
  const list = await kubeConfig.makeApiClient(CoreV1Api).listNamespace();
  return list.items.map((ns) => ns.metadata?.name ?? '');
}

test('env up --json describes reachable servers and Ctrl-C leaves no process', async () => {
  await envUp(['--names', 'alpha', '--no-redis'], async (description) => {
    assert.deepEqual(
      description.clusters.map((c) => c.name),
      ['alpha'],
    );
    assert.equal(description.clusters[0]!.pids.length, 2, 'a kube-apiserver and an etcd');
    assert.equal(description.redis, undefined, '--no-redis started redis');
    assert.ok((await namespaces(description.clusters[0]!.kubeconfig)).includes('default'));
    const nc = await connect({ servers: description.nats!.url });
    await nc.flush();
    await nc.close();
  });
});

test('env up --clusters 2 --no-nats: two control planes with their own service CIDRs, Redis, no NATS', async () => {
  await envUp(['--clusters', '2', '--no-nats'], async (description) => {
    assert.equal(description.clusters.length, 2);
    assert.equal(new Set(description.clusters.map((c) => c.name)).size, 2);
    assert.notEqual(description.clusters[0]!.serviceCidr, description.clusters[1]!.serviceCidr);
    for (const cluster of description.clusters)
      assert.ok((await namespaces(cluster.kubeconfig)).includes('default'), `${cluster.name} is not up`);
    assert.equal(description.nats, undefined, '--no-nats started NATS');
    // Redis answers PING.
    const url = new URL(description.redis!.url);
    const pong = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => socket.write('PING\r\n'));
      socket.setEncoding('utf8').once('data', (data: string) => {
        socket.destroy();
        resolve(data);
      });
      socket.once('error', reject);
    });
    assert.equal(pong, '+PONG\r\n');
  });
});

test('env up refuses a bad cluster count, naming the option', async () => {
  const child = spawn(process.execPath, [cli, 'env', 'up', '--clusters', '99'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.notEqual(code, 0);
  assert.match(stderr, /--clusters <n>' argument '99' is invalid\. must be a whole number from 1 to 8/);
});
