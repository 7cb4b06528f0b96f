import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRegistry, startAdminServer, type Readiness } from './index.ts';

test('the admin server answers /livez, /readyz and /metrics', async () => {
  let readiness: Readiness = { ready: false, reason: 'no config yet' };
  const admin = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    registry: createRegistry({ component: 'sidecar', version: '0.0.0-test' }),
    readiness: () => readiness,
  });
  try {
    assert.equal((await fetch(`${admin.url}/livez`)).status, 200);
    const notReady = await fetch(`${admin.url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), 'not ready: no config yet\n');
    readiness = { ready: true };
    assert.equal((await fetch(`${admin.url}/readyz`)).status, 200);
    const metrics = await (await fetch(`${admin.url}/metrics`)).text();
    assert.match(metrics, /causeway_build_info\{component="sidecar",version="0.0.0-test"\} 1/);
    assert.match(metrics, /process_resident_memory_bytes/);
    assert.equal((await fetch(`${admin.url}/nope`)).status, 404);
    assert.equal((await fetch(`${admin.url}/livez`, { method: 'POST' })).status, 405);
  } finally {
    await admin.close();
  }
});
