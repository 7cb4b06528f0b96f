import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import {
  ConfigError,
  envName,
  escapeEnvironment,
  expandEnvironment,
  listenAddress,
  parseConfig,
  readEnvironment,
  splitAddress,
} from './index.ts';

const schema = z.object({
  admin: z.object({ address: listenAddress }),
  workers: z.number().int().min(1).max(8),
});

test('a valid configuration is returned as parsed', () => {
  assert.deepEqual(parseConfig(schema, { admin: { address: '127.0.0.1:0' }, workers: 2 }, 'test'), {
    admin: { address: '127.0.0.1:0' },
    workers: 2,
  });
});

test('every problem names its field and the value given', () => {
  assert.throws(
    () => parseConfig(schema, { admin: { address: 'localhost:70000' }, workers: 9 }, 'flags'),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'CAUSEWAY_CONFIG_INVALID');
      assert.equal(error.problems.length, 2);
      assert.match(
        error.problems[0]!,
        /^admin\.address: port must be at most 65535 \(got "localhost:70000"\)$/,
      );
      assert.match(error.problems[1]!, /^workers: .*8.* \(got 9\)$/);
      assert.match(error.message, /from flags/);
      return true;
    },
  );
});

test('a missing field is reported as such', () => {
  assert.throws(() => parseConfig(schema, { workers: 1 }, 'file'), /admin: .* \(got nothing\)/);
});

test('environment variable names follow the field path', () => {
  assert.equal(envName('admin.address'), 'CAUSEWAY_ADMIN_ADDRESS');
  assert.equal(envName('logLevel'), 'CAUSEWAY_LOG_LEVEL');
  assert.deepEqual(
    readEnvironment(['logLevel', 'admin.address'], {
      CAUSEWAY_LOG_LEVEL: 'debug',
      CAUSEWAY_ADMIN_ADDRESS: '',
    }),
    {
      logLevel: 'debug',
    },
  );
});

test('addresses split into host and port, IPv6 included', () => {
  assert.deepEqual(splitAddress('127.0.0.1:15000'), { host: '127.0.0.1', port: 15000 });
  assert.deepEqual(splitAddress('[::1]:80'), { host: '::1', port: 80 });
  assert.equal(listenAddress.safeParse('no-port').success, false);
});

test('settings strings take ${NAME} from the environment, field by field', () => {
  const env = { POD_IP: '10.244.0.7', CLUSTER: 'east', EMPTY: '' };
  assert.deepEqual(
    expandEnvironment(
      {
        podIp: '${POD_IP}',
        cluster: '${CLUSTER}',
        gateways: ['${POD_IP}:15443'],
        price: '$$5 or $5',
        port: 80,
      },
      'sidecar.yaml',
      env,
    ),
    { podIp: '10.244.0.7', cluster: 'east', gateways: ['10.244.0.7:15443'], price: '$5 or $5', port: 80 },
  );
  // A value is text only: what a variable holds never becomes YAML structure or another reference.
  assert.deepEqual(expandEnvironment({ a: '${X}' }, 'f', { X: '${CLUSTER}\nb: 1' }), {
    a: '${CLUSTER}\nb: 1',
  });
  assert.throws(
    () =>
      expandEnvironment(
        { nats: { url: 'nats://${NATS_HOST}:4222' }, list: ['${EMPTY}', '${oops', '${1X}'] },
        'c.yaml',
        env,
      ),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.problems, [
        'nats.url: environment variable NATS_HOST is not set',
        'list.0: environment variable EMPTY is not set',
        "list.1: '${oops' is not a reference to an environment variable (${NAME}, or $$ for a $)",
        "list.2: '${1X}' is not a reference to an environment variable (${NAME}, or $$ for a $)",
      ]);
      assert.match(error.message, /from c\.yaml/);
      return true;
    },
  );
});

test('a settings file a program writes reads back as written, $ and ${ included', () => {
  const settings = { tokenFile: '/tmp/a$b/${HOME}/$$', list: ['$', 1, true], nested: { x: 'plain' } };
  assert.deepEqual(expandEnvironment(escapeEnvironment(settings), 'f', {}), settings);
});
