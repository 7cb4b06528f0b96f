/** Where a proxy instance's latest certificate stands, for rotation progress. */
export interface IssuedEntry {
  readonly spiffeId: string;
  /** The root the certificate chains to. */
  readonly rootFingerprint: string;
  /** The hash of the trust bundle handed out with it. */
  readonly bundleHash: string;
  readonly notAfter: Date;
}

/** The latest certificate issued to each proxy instance. */
export class IssuedCertificates {
  private readonly latest = new Map<string, IssuedEntry>();

  record(instance: string, entry: IssuedEntry): void {
    this.latest.set(instance, entry);
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
