// `causeway env up` starts real servers, prints how to reach them, and on Ctrl-C (SIGINT)
// stops every one of them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
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

test('env up --json describes reachable servers and Ctrl-C leaves no process', async () => {
  const child = spawn(process.execPath, [cli, 'env', 'up', '--names', 'alpha', '--no-redis', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    void exited.then((code) => reject(new Error(`env up exited ${code} before printing: ${stderr}`)));
  });
  const description = JSON.parse(firstLine) as {
    clusters: Array<{ name: string; kubeconfig: string; serviceCidr: string; pids: number[] }>;
    nats: { url: string; pid: number };
    redis?: unknown;
  };
  try {
    assert.equal(description.clusters.length, 1);
    assert.equal(description.clusters[0]!.name, 'alpha');
    assert.equal(description.redis, undefined);
    assert.match(stderr, /cluster alpha .* ready in/);

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(description.clusters[0]!.kubeconfig);
    const namespaces = await kubeConfig.makeApiClient(CoreV1Api).listNamespace();
    assert.ok(namespaces.items.some((ns) => ns.metadata?.name === 'default'));
    const nc = await connect({ servers: description.nats.url });
    await nc.flush();
    await nc.close();
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /stopped; no process left behind/);
  const pids = [...description.clusters.flatMap((c) => c.pids), description.nats.pid];
  assert.equal(pids.length, 3);
  assert.deepEqual(pids.filter(alive), [], 'server processes still running after Ctrl-C');
  assert.equal(
    existsSync(path.dirname(description.clusters[0]!.kubeconfig)),
    false,
    'temp folder left behind',
  );
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
