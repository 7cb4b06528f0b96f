import { appendFileSync } from 'node:fs';
import { readFile, truncate } from 'node:fs/promises';
import { StateFile } from '@causeway/config';
import type { SignedExportRecord } from './records.ts';

/** A peer's liveness as persisted (our clock). */
export interface PeerRecord {
  sequence: number;
  /** Our clock, ms. */
  receivedAt: number;
  gatewayAddresses: readonly string[];
}

/** The whole catalog at one point: signers and signed records, verified again on restore. */
export interface CatalogSnapshot {
  version: 1;
  /** By certificate fingerprint. */
  signers: Record<string, { cluster: string; pem: string }>;
  records: Record<string, SignedExportRecord>;
  peers: Record<string, PeerRecord>;
}

/** Appended lines that are written at once, without waiting for a commit. */
const BATCH_LINES = 1_000;

/** One change, appended to the journal in the order it was accepted. */
export type JournalEntry =
  | { readonly t: 'signer'; readonly cluster: string; readonly pem: string }
  | { readonly t: 'record'; readonly key: string; readonly signed: SignedExportRecord }
  | { readonly t: 'peer'; readonly cluster: string; readonly peer: PeerRecord };

/**
 * The last-known-good catalog on disk: a snapshot (`<file>`) plus a journal of every change
 * since (`<file>.journal`, one JSON line per change). Appending costs one small write per
 * batch, whatever the catalog's size, so changes are on disk before proxies hear of them.
 * When the journal outgrows the catalog, a new snapshot replaces both. A process killed in
 * the middle of an append leaves at most a torn last line, which restore skips.
 */
export class CatalogJournal {
  private readonly snapshotFile: StateFile<CatalogSnapshot>;
  private readonly journalFile: string;
  private buffer: string[] = [];
  private lines = 0;
  /** The compaction in progress, if any. */
  private chain: Promise<void> = Promise.resolve();
  private compacting = false;
  private lastError: unknown;

  constructor(file: string) {
    this.snapshotFile = new StateFile(file);
    this.journalFile = `${file}.journal`;
  }

  /** The snapshot and the journal entries after it, oldest first. */
  async load(): Promise<{ snapshot: CatalogSnapshot | undefined; entries: JournalEntry[] }> {
    const snapshot = await this.snapshotFile.read();
    let text = '';
    try {
      text = await readFile(this.journalFile, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const entries: JournalEntry[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        const entry = JSON.parse(line) as JournalEntry | null;
        // Anything that is not one of our entries is skipped, like a torn line.
        if (entry && typeof entry === 'object' && ['signer', 'record', 'peer'].includes(entry.t))
          entries.push(entry);
      } catch {
        // A torn line from a crash mid-append: everything before it stands.
      }
    }
    this.lines = entries.length;
    return { snapshot, entries };
  }

  append(entry: JournalEntry): void {
    this.buffer.push(JSON.stringify(entry));
    if (this.buffer.length >= BATCH_LINES && this.lastError === undefined) this.write();
  }

  /**
   * Appends a record entry whose signed record is already JSON text (as it came from NATS,
   * verified): no second serialization of what was just parsed.
   */
  appendRecordText(key: string, signedText: string): void {
    this.buffer.push(`{"t":"record","key":${JSON.stringify(key)},"signed":${signedText}}`);
    if (this.buffer.length >= BATCH_LINES && this.lastError === undefined) this.write();
  }

  /**
   * Writes what was appended so far (unless a compaction is replacing the files: then right
   * after it). Resolves once it is in the file.
   */
  commit(): Promise<void> {
    this.write();
    return this.chain;
  }

  /**
   * Appends the buffered lines to the file, synchronously: one small write to the page
   * cache per batch (no fsync). A burst (a cold sync of a large catalog) is written every
   * BATCH_LINES as it comes (after a failed write, only at commits). Were writes left to the event loop, a backlog of NATS
   * deliveries, which runs in microtasks, would hold them back with every line in memory.
   */
  private write(): void {
    if (this.compacting || this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    try {
      appendFileSync(this.journalFile, `${batch.join('\n')}\n`, { mode: 0o600 });
      this.lines += batch.length;
      this.lastError = undefined;
    } catch (error) {
      // Kept for the next commit; the catalog in memory is unaffected.
      this.buffer = [...batch, ...this.buffer];
      this.lastError = error;
    }
  }

  /** Journal lines on disk since the last snapshot. */
  get length(): number {
    return this.lines;
  }

  /**
   * Replaces snapshot and journal with one new snapshot of everything appended so far;
   * what is appended meanwhile is written to the emptied journal after it.
   */
  compact(snapshot: () => CatalogSnapshot): Promise<void> {
    this.write();
    this.compacting = true;
    this.snapshotFile.write(snapshot());
    this.chain = this.chain.then(async () => {
      try {
        await this.snapshotFile.flush();
        await truncate(this.journalFile, 0).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        });
        this.lines = 0;
      } catch (error) {
        this.lastError = error;
      } finally {
        this.compacting = false;
        this.write();
      }
    });
    return this.chain;
  }

  /** Resolves when everything appended is written; rejects with the last failure. */
  async flush(): Promise<void> {
    await this.commit();
    if (this.lastError) throw this.lastError;
  }
}
