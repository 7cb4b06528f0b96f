import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Where a proxy instance's latest certificate stands, for rotation progress. */
export interface IssuedEntry {
  readonly spiffeId: string;
  /** The root the certificate chains to. */
  readonly rootFingerprint: string;
  /** The hash of the trust bundle handed out with it. */
  readonly bundleHash: string;
  readonly notAfter: Date;
}

/**
 * The latest certificate issued to each proxy instance. Entries are keyed by the
 * authenticated identity plus the instance name the caller gave, so a caller can only
 * replace entries of its own identity; each identity has at most MAX_INSTANCES entries.
 */
export class IssuedCertificates {
  static readonly MAX_INSTANCES = 10_000;
  private readonly latest = new Map<string, IssuedEntry>();
  private saving: Promise<void> = Promise.resolve();

  /** With a file, entries survive a controller restart (a rotation must not forget them). */
  constructor(private readonly file?: string) {}

  async load(): Promise<void> {
    if (!this.file) return;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const saved = JSON.parse(text) as Array<[string, Omit<IssuedEntry, 'notAfter'> & { notAfter: string }]>;
    for (const [key, entry] of saved) this.latest.set(key, { ...entry, notAfter: new Date(entry.notAfter) });
  }

  record(instance: string, entry: IssuedEntry): void {
    const key = `${entry.spiffeId}#${instance}`;
    if (!this.latest.has(key)) {
      const prefix = `${entry.spiffeId}#`;
      let count = 0;
      for (const existing of this.latest.keys()) if (existing.startsWith(prefix)) count++;
      if (count >= IssuedCertificates.MAX_INSTANCES) return;
    }
    this.latest.set(key, entry);
    this.save();
  }

  /** Writes are chained (never two at once) and go through a temporary file. */
  private save(): void {
    const file = this.file;
    if (!file) return;
    const snapshot = JSON.stringify([...this.latest]);
    this.saving = this.saving
      .then(async () => {
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(`${file}.tmp`, snapshot, { mode: 0o600 });
        await rename(`${file}.tmp`, file);
        this.saveError = undefined;
      })
      // Kept, not thrown: the next write retries, and flush() reports it.
      .catch((error: unknown) => {
        this.saveError = error;
      });
  }

  private saveError: unknown;

  /** Resolves once every pending write is on disk; rejects if the last one failed. */
  async flush(): Promise<void> {
    await this.saving;
    if (this.saveError) throw this.saveError;
  }

  /** Unexpired latest certificates, counted by root and by bundle hash. */
  summary(now = Date.now()): { byRoot: Record<string, number>; byBundle: Record<string, number> } {
    const byRoot: Record<string, number> = {};
    const byBundle: Record<string, number> = {};
    for (const [instance, entry] of this.latest) {
      if (entry.notAfter.getTime() <= now) {
        this.latest.delete(instance);
        continue;
      }
      byRoot[entry.rootFingerprint] = (byRoot[entry.rootFingerprint] ?? 0) + 1;
      byBundle[entry.bundleHash] = (byBundle[entry.bundleHash] ?? 0) + 1;
    }
    return { byRoot, byBundle };
  }
}
