import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A JSON file that holds a process's last-known-good state. Writes are chained (never two
 * at once) and go through a temporary file and a rename, so a crash never leaves half a
 * file. A failed write is kept, not thrown: the next write retries and `flush()` reports it.
 */
export class StateFile<T> {
  private saving: Promise<void> = Promise.resolve();
  private saveError: unknown;
  private pending: T | undefined;

  constructor(readonly file: string) {}

  /** The saved value, or undefined when there is none yet. Unreadable JSON throws. */
  async read(): Promise<T | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return JSON.parse(text) as T;
  }

  /** Queues a write of `value`; writes queued while one runs collapse into the newest. */
  write(value: T): void {
    const queued = this.pending !== undefined;
    this.pending = value;
    if (queued) return;
    this.saving = this.saving.then(async () => {
      const next = this.pending as T;
      this.pending = undefined;
      try {
        await mkdir(path.dirname(this.file), { recursive: true });
        const temporary = `${this.file}.${process.pid}.tmp`;
        await writeFile(temporary, JSON.stringify(next), { mode: 0o600 });
        await rename(temporary, this.file);
        this.saveError = undefined;
      } catch (error) {
        this.saveError = error;
      }
    });
  }

  /** Resolves once every queued write is on disk; rejects if the last one failed. */
  async flush(): Promise<void> {
    await this.saving;
    if (this.saveError) throw this.saveError;
  }
}
