import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ConfigError, envName, listenAddress, parseConfig, readEnvironment, splitAddress } from './index.ts';

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
