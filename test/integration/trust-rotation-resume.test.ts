// A rotation never removes a root that a workload still depends on: it stops, says how to
// resume, and resumes where it stopped once the workload has moved.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CertificateRenewer } from '@causeway/identity';
import { TrustDirectory, type SignedTrustBundle } from '@causeway/pki';
import { repoRoot, startNats, type NatsServer } from '@causeway/testing';
import { startControllerServer, type ControllerServer } from '@causeway/federation-controller/server';
import { NatsTrustStore, startTrustController, type TrustController } from '@causeway/trust';

const run = promisify(execFile);
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');
const TD = 'mesh.test';
const TOKEN = 'resume-test-token-0123';

let nats: NatsServer | undefined;
let dir: string | undefined;
let connection: NatsConnection | undefined;
let controller: TrustController | undefined;
let server: ControllerServer | undefined;

after(async () => {
  await server?.close();
  await controller?.close();
  await connection?.close();
  await nats?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a paused workload stops the rotation before anything is removed; once it runs again, rotate resumes and finishes', async () => {
  nats = await startNats();
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-resume-'));
  await run(process.execPath, [cli, 'trust', 'init', '--dir', dir, '--trust-domain', TD]);
  await run(process.execPath, [cli, 'trust', 'issue-intermediate', '--dir', dir, '--cluster', 'east']);
  connection = await connect({ servers: nats.url });
  const store = await NatsTrustStore.open(connection);
  const directory = new TrustDirectory(dir);
  const files = directory.clusterFiles('east');
  controller = await startTrustController({
    cluster: 'east',
    trustDomain: TD,
    intermediateCertificatePem: await readFile(files.certificate, 'utf8'),
    intermediateKeyPem: await readFile(files.privateKey, 'utf8'),
    bootstrapBundle: JSON.parse(await readFile(directory.bundleFile, 'utf8')) as SignedTrustBundle,
    stateDir: path.join(dir, 'state'),
    proof: { kind: 'join-tokens', tokens: [{ token: TOKEN, namespaces: ['*'], serviceAccounts: ['*'] }] },
    workloadTtlMs: 3_600_000,
    store,
    statusIntervalMs: 200,
  });
  server = await startControllerServer({ trust: controller, listen: { host: '127.0.0.1', port: 0 } });
  const renewer = () =>
    new CertificateRenewer({
      controllerUrl: server!.url,
      bootstrapRoots: controller!.trust.bundle.roots,
      trustDomain: TD,
      cluster: 'east',
      namespace: 'shop',
      serviceAccount: 'batch',
      instance: 'batch-0',
      token: () => TOKEN,
      trustPollMs: 200,
      onCredentials: () => {},
    });
  // A workload that gets its certificate and then stops renewing (a paused job).
  const paused = renewer();
  await paused.start();
  await paused.stop();

  const first = await run(process.execPath, [
    cli,
    'trust',
    'rotate',
    '--dir',
    dir,
    '--nats-url',
    nats.url,
    '--step-timeout',
    '3s',
  ]).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(first.code, 1, first.stderr);
  // It never saw the bundle with the new root, so the rotation may not move past step 1.
  assert.match(first.stderr, /1 workload\(s\) still hold an older bundle/);
  assert.match(
    first.stderr,
    /step '1\/4 bundle' did not complete .* run 'causeway trust rotate' again to resume/,
  );
  const record = JSON.parse(await readFile(path.join(dir, 'rotation.json'), 'utf8')) as { step: string };
  assert.equal(record.step, 'started');
  assert.equal(controller.trust.bundle.roots.length, 2, 'the old root must still be trusted');

  // The workload runs again, and keeps renewing while the rotation goes on.
  const resumed = renewer();
  await resumed.start();
  const second = await run(process.execPath, [
    cli,
    'trust',
    'rotate',
    '--dir',
    dir,
    '--nats-url',
    nats.url,
    '--step-timeout',
    '20s',
  ]);
  await resumed.stop();
  assert.match(second.stderr, /resuming the rotation root-1 -> root-2 at step 'started'/);
  assert.match(second.stderr, /rotation done: root-2 is the only root/);
  assert.equal(controller.trust.bundle.roots.length, 1);
  await assert.rejects(stat(path.join(dir, 'rotation.json')));
});
