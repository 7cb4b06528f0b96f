import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleHash, type TrustDirectory } from '@causeway/pki';
import type { ClusterTrustStatus } from './keys.ts';
import type { NatsTrustStore } from './nats-trust-store.ts';

/** Where a rotation stands; kept in `<dir>/rotation.json` so an interrupted one resumes. */
export type RotationStep = 'started' | 'bundle-added' | 'intermediates-reissued' | 'workloads-moved' | 'done';

export interface RotationRecord {
  readonly from: string;
  readonly to: string;
  readonly step: RotationStep;
  readonly startedAt: string;
}

export interface RotationOptions {
  readonly directory: TrustDirectory;
  readonly store: NatsTrustStore;
  /** One line per event, for a person watching. */
  readonly onProgress: (line: string) => void;
  /** How long each wait may take before the rotation stops (it can be resumed). */
  readonly stepTimeoutMs?: number;
  readonly pollMs?: number;
}

export class RotationError extends Error {
  readonly code = 'CAUSEWAY_TRUST_ROTATION_STALLED';
}

const short = (hash: string): string => hash.replace(/:/g, '').slice(0, 12).toLowerCase();

/**
 * Root rotation without failed requests:
 *  1. add the new root to the bundle (signed by the old root) and wait until every cluster
 *     and every workload it issued holds that bundle;
 *  2. re-issue every cluster's intermediate from the new root, same key, and wait until
 *     every controller signs with it;
 *  3. wait until no workload certificate chains to the old root;
 *  4. remove the old root (bundle signed by the new root) and wait until everyone has it.
 * Each step is recorded before the next begins.
 */
export async function rotateRoot(options: RotationOptions): Promise<RotationRecord> {
  const { directory, store, onProgress } = options;
  const recordFile = path.join(directory.dir, 'rotation.json');
  const save = async (record: RotationRecord): Promise<RotationRecord> => {
    await writeFile(recordFile, `${JSON.stringify(record, null, 2)}\n`);
    return record;
  };
  let record: RotationRecord;
  try {
    record = JSON.parse(await readFile(recordFile, 'utf8')) as RotationRecord;
    onProgress(`resuming the rotation ${record.from} -> ${record.to} at step '${record.step}'`);
  } catch {
    const state = await directory.state();
    const active = state.roots.find((root) => root.active);
    if (!active) throw new RotationError(`${directory.dir} has no active root to rotate from (trust.json)`);
    // The record is written before the new root exists, so that a crash in between resumes
    // with the same name instead of leaving an orphan root behind.
    record = await save({
      from: active.name,
      to: `root-${state.roots.length + 1}`,
      step: 'started',
      startedAt: new Date().toISOString(),
    });
    onProgress(`rotation ${record.from} -> ${record.to} started`);
  }
  if (!(await directory.state()).roots.some((root) => root.name === record.to)) {
    const { name } = await directory.addRoot();
    if (name !== record.to)
      throw new RotationError(`expected to create ${record.to}, created ${name}; check ${recordFile}`);
  }
  const clusters = await directory.clusters();
  if (clusters.length === 0)
    onProgress('no cluster intermediates in this directory; only the bundle changes');
  const fingerprint = async (name: string): Promise<string> =>
    (await directory.loadRoot(name)).certificate.fingerprint256;
  const oldRoot = await fingerprint(record.from);
  const newRoot = await fingerprint(record.to);

  const waitFor = async (
    step: string,
    since: Date,
    check: (status: ClusterTrustStatus) => string | true,
  ): Promise<void> => {
    const deadline = Date.now() + (options.stepTimeoutMs ?? 600_000);
    const last = new Map<string, string>();
    for (;;) {
      let pending = 0;
      for (const cluster of clusters) {
        const status = await store.status(cluster);
        let verdict: string | true;
        if (!status) verdict = 'no status reported yet';
        else if (new Date(status.time) < since) verdict = 'status older than this step';
        else verdict = check(status);
        const line = verdict === true ? 'done' : `waiting: ${verdict}`;
        if (last.get(cluster) !== line) onProgress(`  [${step}] ${cluster}: ${line}`);
        last.set(cluster, line);
        if (verdict !== true) pending++;
      }
      if (pending === 0) return;
      if (Date.now() > deadline) {
        throw new RotationError(
          `step '${step}' did not complete for ${pending} cluster(s); run 'causeway trust rotate' again to resume`,
        );
      }
      await sleep(options.pollMs ?? 500);
    }
  };
  const everyoneHas =
    (hash: string) =>
    (status: ClusterTrustStatus): string | true => {
      if (status.bundleHash !== hash) return `controller has bundle ${status.bundleHash}, not ${hash}`;
      const stale = Object.entries(status.workloads.byBundle).filter(([h, n]) => h !== hash && n > 0);
      if (stale.length > 0)
        return `${stale.reduce((sum, [, n]) => sum + n, 0)} workload(s) still hold an older bundle`;
      return true;
    };

  if (record.step === 'started') {
    onProgress(
      `step 1/4: publish a bundle with both roots (${short(oldRoot)}, ${short(newRoot)}), signed by ${record.from}`,
    );
    const since = new Date();
    const signed = await directory.publishBundle(await directory.loadRoot(record.from));
    await store.putBundle(signed);
    await waitFor('1/4 bundle', since, everyoneHas(bundleHash(signed.bundle)));
    record = await save({ ...record, step: 'bundle-added' });
  }
  if (record.step === 'bundle-added') {
    onProgress(`step 2/4: re-issue ${clusters.length} intermediate(s) from ${record.to}`);
    await directory.activateRoot(record.to);
    const since = new Date();
    for (const cluster of clusters)
      await store.putIntermediate(cluster, await directory.reissueIntermediate(cluster));
    await waitFor('2/4 intermediates', since, (status) =>
      status.intermediateRoot === newRoot
        ? true
        : `signing with an intermediate of root ${short(status.intermediateRoot)}`,
    );
    record = await save({ ...record, step: 'intermediates-reissued' });
  }
  if (record.step === 'intermediates-reissued') {
    onProgress(`step 3/4: wait until no workload certificate chains to ${record.from}`);
    await waitFor('3/4 workloads', new Date(), (status) => {
      const left = status.workloads.byRoot[oldRoot] ?? 0;
      return left === 0 ? true : `${left} workload certificate(s) still chain to ${record.from}`;
    });
    record = await save({ ...record, step: 'workloads-moved' });
  }
  if (record.step === 'workloads-moved') {
    // Checked again right before the removal, on reports made after this moment: a
    // workload that came back with an old certificate must not lose its trust.
    await waitFor('4/4 pre-check', new Date(), (status) => {
      if (status.intermediateRoot !== newRoot)
        return `signing with an intermediate of root ${short(status.intermediateRoot)}`;
      const left = status.workloads.byRoot[oldRoot] ?? 0;
      return left === 0 ? true : `refusing to remove ${record.from}: ${left} workload(s) depend on it`;
    });
    onProgress(`step 4/4: remove ${record.from} from the bundle (signed by ${record.to})`);
    await directory.retireRoot(record.from);
    const since = new Date();
    const signed = await directory.publishBundle(await directory.loadRoot(record.to));
    await store.putBundle(signed);
    await waitFor('4/4 remove old root', since, everyoneHas(bundleHash(signed.bundle)));
    record = await save({ ...record, step: 'done' });
  }
  await rm(recordFile, { force: true });
  onProgress(`rotation done: ${record.to} is the only root`);
  return record;
}
