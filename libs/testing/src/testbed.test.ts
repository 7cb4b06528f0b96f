import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { TestbedError } from './errors.ts';
import { serviceCidrFor } from './kube.ts';
import { freePorts } from './ports.ts';
import { looksLikePortClash, startWithPortRetry } from './managed-process.ts';

test('each simulated cluster gets its own service CIDR', () => {
  assert.deepEqual([0, 1, 2].map(serviceCidrFor), ['10.96.0.0/16', '10.97.0.0/16', '10.98.0.0/16']);
  assert.throws(() => serviceCidrFor(-1), TestbedError);
  assert.throws(() => serviceCidrFor(1.5), /out of range/);
});

test('free ports are distinct and bindable on loopback', async () => {
  const ports = await freePorts(5);
  assert.equal(new Set(ports).size, 5);
  for (const port of ports) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) =>
      server.once('error', reject).listen(port, '127.0.0.1', resolve),
    );
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a start that lost its port is retried; other failures are not', async () => {
  let attempts = 0;
  const value = await startWithPortRetry(async () => {
    attempts++;
    if (attempts < 3) throw new Error('listen tcp 127.0.0.1:4222: bind: address already in use');
    return 'started';
  }, looksLikePortClash);
  assert.equal(value, 'started');
  assert.equal(attempts, 3);

  let other = 0;
  await assert.rejects(
    startWithPortRetry(async () => {
      other++;
      throw new Error('permission denied');
    }, looksLikePortClash),
    /permission denied/,
  );
  assert.equal(other, 1);
});
