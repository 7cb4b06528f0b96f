/** The latest certificate issued to each proxy instance, for rotation progress. */
export class IssuedCertificates {
  private readonly latest = new Map<
    string,
    { spiffeId: string; rootFingerprint: string; notAfter: number }
  >();

  record(instance: string, entry: { spiffeId: string; rootFingerprint: string; notAfter: Date }): void {
    this.latest.set(instance, { ...entry, notAfter: entry.notAfter.getTime() });
  }

  /** Unexpired latest certificates counted by the root they chain to. */
  countByRoot(now = Date.now()): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const [instance, entry] of this.latest) {
      if (entry.notAfter <= now) {
        this.latest.delete(instance);
        continue;
      }
      counts[entry.rootFingerprint] = (counts[entry.rootFingerprint] ?? 0) + 1;
    }
    return counts;
  }
}
