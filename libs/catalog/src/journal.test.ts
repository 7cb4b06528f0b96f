import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CatalogJournal } from './journal.ts';

test('journal: appended entries survive; a torn last line is skipped; compaction keeps everything', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-journal-'));
  try {
    const file = path.join(dir, 'catalog.json');
    const journal = new CatalogJournal(file);
    journal.append({ t: 'signer', cluster: 'east', pem: 'PEM-1' });
    journal.append({
      t: 'peer',
      cluster: 'east',
      peer: { sequence: 1, receivedAt: 5, gatewayAddresses: [] },
    });
    await journal.commit();
    await appendFile(`${file}.journal`, '{"t":"signer","clus'); // killed mid-append
    const reopened = new CatalogJournal(file);
    const loaded = await reopened.load();
    assert.equal(loaded.snapshot, undefined);
    assert.deepEqual(
      loaded.entries.map((e) => e.t),
      ['signer', 'peer'],
    );
    await reopened.compact(() => ({
      version: 1,
      signers: { f1: { cluster: 'east', pem: 'PEM-2' } },
      records: {},
      peers: {},
    }));
    reopened.append({ t: 'signer', cluster: 'west', pem: 'PEM-3' });
    await reopened.flush();
    const after = await new CatalogJournal(file).load();
    assert.deepEqual(after.snapshot?.signers, { f1: { cluster: 'east', pem: 'PEM-2' } });
    assert.deepEqual(after.entries, [{ t: 'signer', cluster: 'west', pem: 'PEM-3' }]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
