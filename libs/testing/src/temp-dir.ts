import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A private temporary folder, removed by `remove()`. */
export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

export async function makeTempDir(prefix: string): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `causeway-${prefix}-`));
  return {
    path: dir,
    remove: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }),
  };
}
