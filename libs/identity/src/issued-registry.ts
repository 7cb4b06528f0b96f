import { StateFile } from '@causeway/config';

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
  private readonly file:
    StateFile<Array<[string, Omit<IssuedEntry, 'notAfter'> & { notAfter: string }]>> | undefined;

  /** With a file, entries survive a controller restart (a rotation must not forget them). */
  constructor(file?: string) {
    this.file = file ? new StateFile(file) : undefined;
  }

  async load(): Promise<void> {
    const saved = await this.file?.read();
    for (const [key, entry] of saved ?? [])
      this.latest.set(key, { ...entry, notAfter: new Date(entry.notAfter) });
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

  private save(): void {
    this.file?.write(
      [...this.latest].map(([key, entry]) => [key, { ...entry, notAfter: entry.notAfter.toISOString() }]),
    );
  }

  /** Resolves once every pending write is on disk; rejects if the last one failed. */
  async flush(): Promise<void> {
    await this.file?.flush();
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
