import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isIP } from 'node:net';
import { StateFile, z } from '@causeway/config';
import type { Workload } from '@causeway/discovery';
import { FILE_KINDS, parseObjects, type FileObject, type ParsedFile } from './file-objects.ts';
import {
  SOURCE_KINDS,
  type ClusterSource,
  type SourceEvent,
  type SourceKind,
  type SourceObject,
  type SourceProblem,
} from './source.ts';
import { workloadObjects, type RegisteredWorkload } from './workload-endpoints.ts';

/** How often the folder is scanned for changes that file events missed (subfolders, editors). */
const POLL_MS = 1_000;
/** File events arriving together are read in one scan. */
const SETTLE_MS = 25;
const DEFAULT_GRACE_MS = 10_000;
const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

interface FileEntry {
  readonly mtimeMs: number;
  readonly size: number;
  readonly objects: readonly FileObject[];
  readonly problems: readonly SourceProblem[];
  /** When the file was first seen gone or empty while it still held objects. */
  readonly vanishedAt?: number;
}

/**
 * A file that disappears or turns empty keeps its objects until a scan this much later
 * still finds it so: editors that truncate and rewrite, saves that delete and recreate,
 * and branch switches never unexport anything for a moment.
 */
const VANISH_CONFIRM_MS = 1_500;

/** What file mode keeps across restarts (checked when read: a bad file is reported and ignored). */
const stateSchema = z.object({
  /** `Kind/namespace/name` -> when the object was first read (its creationTimestamp). */
  created: z.record(z.string(), z.iso.datetime()),
  /** Workloads registered by sidecars (each gets a grace period after a restart). */
  workloads: z.array(
    z.object({
      proxy: z.string().min(1),
      namespace: z.string().min(1),
      serviceAccount: z.string().min(1),
      workload: z.object({
        name: z.string().min(1),
        labels: z.record(z.string(), z.string()),
        address: z.string().refine((address) => isIP(address) !== 0),
        ports: z.array(
          z.object({
            name: z.string().optional(),
            port: z.number().int().min(1).max(65_535),
            appPort: z.number().int().min(1).max(65_535).optional(),
          }),
        ),
        zone: z.string().optional(),
        ready: z.boolean().optional(),
      }),
    }),
  ),
});
interface FileSourceState {
  created: Record<string, string>;
  workloads: readonly RegisteredWorkload[];
}

export class WorkloadConflictError extends Error {}

/**
 * File mode: a cluster's objects from a folder of YAML files (any depth; `.yaml`, `.yml`,
 * `.json`; several documents per file), watched for changes. Services, ServiceExports,
 * routes and policies come from the files; endpoints come from sidecars registering their
 * workloads, which become Pods and EndpointSlices as Kubernetes would make them.
 *
 * Bad input loses nothing: a file that is not YAML keeps the objects last read from it;
 * each malformed object is a problem naming the file, line and field. An object without a
 * `creationTimestamp` gets the time it was first read, kept across restarts (the MCS
 * conflict rules compare export ages). Status is held in memory.
 */
export class FileSource implements ClusterSource {
  readonly mode = 'files';
  private readonly files = new Map<string, FileEntry>();
  private readonly caches = new Map<SourceKind, Map<string, SourceObject>>(
    (Object.keys(SOURCE_KINDS) as SourceKind[]).map((kind) => [kind, new Map()]),
  );
  private readonly statuses = new Map<string, unknown>();
  private problemList: SourceProblem[] = [];
  private readonly invalidObjects = new Map<string, SourceProblem>();
  private readonly workloads = new Map<string, RegisteredWorkload>();
  private readonly connected = new Set<string>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private created: Record<string, string> = {};
  private readonly state: StateFile<FileSourceState> | undefined;
  private onEvent: (event: SourceEvent) => void = () => {};
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private stopped = false;
  private started = false;
  private applyQueued = false;

  constructor(
    private readonly options: {
      readonly directory: string;
      /** Where creation times and registered workloads are kept across restarts. */
      readonly statePath?: string;
      /** How long a workload's endpoints stay after its sidecar disconnects (default 10 s). */
      readonly workloadGraceMs?: number;
      /**
       * How long a workload restored from the state file (registered before a restart)
       * stays while its sidecar reconnects: longer than the sidecars' reconnect backoff, so
       * that a controller restart drops none (default: the workload grace).
       */
      readonly restoredGraceMs?: number;
      readonly onError?: (error: unknown) => void;
      readonly log?: (message: string, fields?: Record<string, unknown>) => void;
    },
  ) {
    this.state = options.statePath ? new StateFile(options.statePath) : undefined;
  }

  async start(onEvent: (event: SourceEvent) => void): Promise<void> {
    this.onEvent = onEvent;
    const info = await stat(this.options.directory).catch(() => undefined);
    if (!info?.isDirectory())
      throw new Error(
        `catalog.directory ${this.options.directory} is not a directory (file mode reads its YAML objects there)`,
      );
    const saved = await this.readState();
    this.created = saved?.created ?? {};
    // Workloads known before a restart stay while their sidecars reconnect, so that
    // endpoints neither flap nor shrink because of the restart.
    const graceMs = this.options.workloadGraceMs ?? DEFAULT_GRACE_MS;
    for (const registered of saved?.workloads ?? []) {
      this.workloads.set(registered.proxy, registered);
      this.expireLater(registered.proxy, Math.max(graceMs, this.options.restoredGraceMs ?? graceMs));
    }
    await this.scan();
    this.started = true;
    try {
      this.watcher = watch(this.options.directory, { recursive: true }, () => this.scanSoon());
      this.watcher.on('error', (error) => this.options.onError?.(error));
    } catch (error) {
      this.options.onError?.(error);
    }
    this.poll = setInterval(() => this.scanSoon(), POLL_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.settle);
    for (const timer of this.graceTimers.values()) clearTimeout(timer);
    await this.scanning;
    await this.state?.flush().catch((error: unknown) => this.options.onError?.(error));
  }

  /** The saved state, or undefined (reported) when it is missing or not what this version wrote. */
  private async readState(): Promise<FileSourceState | undefined> {
    try {
      const raw = await this.state?.read();
      if (raw === undefined) return undefined;
      const parsed = stateSchema.safeParse(raw);
      if (parsed.success) return parsed.data;
      this.options.onError?.(
        new Error(`${this.options.statePath} is not file-mode state; starting without it`),
      );
    } catch (error) {
      this.options.onError?.(error);
    }
    return undefined;
  }

  synced(): boolean {
    return this.started;
  }

  get<T extends SourceObject>(kind: SourceKind, namespace: string, name: string): T | undefined {
    return this.caches.get(kind)!.get(`${namespace}/${name}`) as T | undefined;
  }

  list<T extends SourceObject>(kind: SourceKind, namespace?: string): readonly T[] {
    const all = [...this.caches.get(kind)!.values()] as T[];
    return namespace === undefined ? all : all.filter((object) => object.metadata.namespace === namespace);
  }

  async updateStatus(
    kind: SourceKind,
    namespace: string,
    name: string,
    update: (current: SourceObject) => unknown,
  ): Promise<boolean> {
    const cache = this.caches.get(kind)!;
    const key = `${namespace}/${name}`;
    const current = cache.get(key);
    if (!current) return true;
    const status = update(current);
    if (status === undefined) return true;
    this.statuses.set(`${kind}/${key}`, status);
    cache.set(key, { ...current, status });
    return true;
  }

  problems(): readonly SourceProblem[] {
    return this.problemList;
  }

  invalid(kind: SourceKind, namespace: string, name: string): SourceProblem | undefined {
    return this.invalidObjects.get(`${kind}/${namespace}/${name}`);
  }

  /**
   * A sidecar's workload, registered when it connects. Refused: before the source has
   * started, a proxy id registered under another identity, and a workload name held by a
   * connected sidecar, or by another service account's sidecar in its grace period.
   */
  register(proxy: string, owner: { namespace: string; serviceAccount: string }, workload: Workload): void {
    if (!this.started) throw new WorkloadConflictError('the folder has not been read yet; retry shortly');
    const mine = this.workloads.get(proxy);
    if (mine && (mine.namespace !== owner.namespace || mine.serviceAccount !== owner.serviceAccount))
      throw new WorkloadConflictError(
        `proxy ${proxy} is registered by ${mine.namespace}/${mine.serviceAccount}, not ${owner.namespace}/${owner.serviceAccount}`,
      );
    for (const other of this.workloads.values()) {
      if (
        other.proxy === proxy ||
        other.namespace !== owner.namespace ||
        other.workload.name !== workload.name
      )
        continue;
      if (this.connected.has(other.proxy) || other.serviceAccount !== owner.serviceAccount)
        throw new WorkloadConflictError(
          `workload ${owner.namespace}/${workload.name} is already registered by proxy ${other.proxy}`,
        );
      this.forget(other.proxy);
    }
    clearTimeout(this.graceTimers.get(proxy));
    this.graceTimers.delete(proxy);
    this.connected.add(proxy);
    this.workloads.set(proxy, { proxy, ...owner, workload });
    this.options.log?.('workload registered', {
      proxy,
      workload: `${owner.namespace}/${workload.name}`,
      ready: workload.ready !== false,
    });
    this.workloadsChanged();
  }

  /** The workload registered under a proxy id now, if any (connected, in its grace period, or restored). */
  registered(proxy: string): Workload | undefined {
    return this.workloads.get(proxy)?.workload;
  }

  private forget(proxy: string): void {
    clearTimeout(this.graceTimers.get(proxy));
    this.graceTimers.delete(proxy);
    this.workloads.delete(proxy);
  }

  /** The sidecar's stream ended: its workload's endpoints go after the grace period. */
  disconnected(proxy: string): void {
    this.connected.delete(proxy);
    if (this.workloads.has(proxy)) this.expireLater(proxy);
  }

  private expireLater(proxy: string, graceMs = this.options.workloadGraceMs ?? DEFAULT_GRACE_MS): void {
    clearTimeout(this.graceTimers.get(proxy));
    const timer = setTimeout(() => {
      this.graceTimers.delete(proxy);
      const registered = this.workloads.get(proxy);
      if (!registered || this.connected.has(proxy)) return;
      this.workloads.delete(proxy);
      this.options.log?.('workload removed (its sidecar is gone)', {
        proxy,
        workload: `${registered.namespace}/${registered.workload.name}`,
      });
      this.workloadsChanged();
    }, graceMs);
    timer.unref();
    this.graceTimers.set(proxy, timer);
  }

  /** Registrations arriving together (sidecars reconnecting after a restart) are applied once. */
  private workloadsChanged(): void {
    if (this.stopped || this.applyQueued) return;
    this.applyQueued = true;
    setImmediate(() => {
      this.applyQueued = false;
      if (!this.stopped) this.apply();
    });
  }

  private save(): void {
    this.state?.write({ created: this.created, workloads: [...this.workloads.values()] });
  }

  private scanSoon(): void {
    if (this.stopped) return;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      this.scan().catch((error: unknown) => this.options.onError?.(error));
    }, SETTLE_MS);
  }

  /** Reads what changed on disk (one scan at a time; a request during a scan runs after it). */
  private async scan(): Promise<void> {
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.rescan = false;
        if (await this.readFiles()) this.apply();
      } while (this.rescan && !this.stopped);
    })().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  /**
   * Reads what changed on disk into a new file table, swapped in at the end (so a re-plan
   * in between never sees half a scan). True if anything changed.
   */
  private async readFiles(): Promise<boolean> {
    const found = await listFiles(this.options.directory);
    const next = new Map<string, FileEntry>();
    let changed = false;
    const now = Date.now();
    /** Gone or empty: the old objects stay until that is confirmed by a later scan. */
    const vanished = (
      file: string,
      before: FileEntry | undefined,
      info?: { mtimeMs: number; size: number },
    ) => {
      if (
        !before ||
        before.objects.length === 0 ||
        (before.vanishedAt && now - before.vanishedAt >= VANISH_CONFIRM_MS)
      ) {
        if (info) next.set(file, { ...info, objects: [], problems: [] });
        changed ||= before === undefined || before.objects.length > 0;
        return;
      }
      next.set(file, { ...before, ...(info ?? {}), vanishedAt: before.vanishedAt ?? now });
      // Look again once the confirmation time has passed.
      setTimeout(() => this.scanSoon(), VANISH_CONFIRM_MS).unref();
    };
    for (const [file, before] of this.files) if (!found.has(file)) vanished(file, before);
    for (const [file, info] of found) {
      const before = this.files.get(file);
      if (before && before.mtimeMs === info.mtimeMs && before.size === info.size) {
        if (before.vanishedAt) vanished(file, before, info);
        else next.set(file, before);
        continue;
      }
      const relative = path.relative(this.options.directory, file);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          vanished(file, before);
          continue;
        }
        // Unreadable (permissions): reported; what it held before is kept.
        next.set(file, {
          ...info,
          objects: before?.objects ?? [],
          problems: [{ file: relative, message: `cannot be read: ${(error as Error).message}` }],
        });
        changed = true;
        continue;
      }
      if (text.trim() === '') {
        vanished(file, before, info);
        continue;
      }
      const parsed = parseObjects(relative, text);
      next.set(file, { ...info, ...this.keepLastValid(parsed, before) });
      for (const problem of parsed.problems)
        this.options.log?.('file not read', {
          file: problem.file,
          kind: problem.kind,
          name: problem.name,
          problem: problem.message,
        });
      changed = true;
    }
    this.files.clear();
    for (const [file, entry] of next) this.files.set(file, entry);
    return changed;
  }

  /**
   * Bad input loses nothing: a file that is not YAML keeps all it held before, and a
   * malformed object (other than a ServiceExport, whose `Valid=False` says so) keeps its
   * last valid version from the same file, as an API server keeps the old object when an
   * update is refused. A broken DENY policy thus stays in force.
   */
  private keepLastValid(
    parsed: ParsedFile,
    before: FileEntry | undefined,
  ): { objects: FileObject[]; problems: SourceProblem[] } {
    if (!parsed.parsed) return { objects: [...(before?.objects ?? [])], problems: parsed.problems };
    const objects = [...parsed.objects];
    const problems = parsed.problems.map((problem) => {
      if (!problem.kind || !problem.name || problem.kind === 'ServiceExport') return problem;
      const previous = before?.objects.find(
        (o) =>
          o.kind === problem.kind &&
          !o.malformed &&
          o.object.metadata.namespace === problem.namespace &&
          o.object.metadata.name === problem.name,
      );
      if (!previous) return problem;
      objects.push(previous);
      return { ...problem, message: `${problem.message} (the last valid version is kept)`, kept: true };
    });
    return { objects, problems };
  }

  /** Recomputes every cache from the files and workloads and reports the differences. */
  private apply(): void {
    const next = new Map<SourceKind, Map<string, SourceObject>>(
      (Object.keys(SOURCE_KINDS) as SourceKind[]).map((kind) => [kind, new Map()]),
    );
    const problems: SourceProblem[] = [];
    const invalidBefore = new Map(this.invalidObjects);
    this.invalidObjects.clear();
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const files = [...this.files].sort(([a], [b]) => a.localeCompare(b));
    /** `Kind/ns/name` -> the file of its first valid definition. */
    const origin = new Map<string, string>();
    const place = (relative: string, kind: SourceKind, object: SourceObject): void => {
      const key = `${object.metadata.namespace}/${object.metadata.name}`;
      const id = `${kind}/${key}`;
      const first = origin.get(id);
      if (first !== undefined) {
        problems.push({
          file: relative,
          kind,
          namespace: object.metadata.namespace,
          name: object.metadata.name,
          message: `${kind} ${key} is also defined in ${first}; the first definition is used`,
        });
        return;
      }
      origin.set(id, relative);
      const createdAt = (this.created[id] ??= now);
      const status = this.statuses.get(id);
      next.get(kind)!.set(key, {
        ...object,
        metadata: { ...object.metadata, creationTimestamp: new Date(createdAt) },
        ...(status === undefined ? {} : { status }),
      });
    };
    // Valid definitions first, so that a malformed duplicate never hides a valid one.
    for (const [file, entry] of files)
      for (const { kind, object, malformed } of entry.objects)
        if (!malformed) place(path.relative(this.options.directory, file), kind, object);
    for (const [file, entry] of files) {
      for (const problem of entry.problems) {
        problems.push(problem);
        const id = `${problem.kind}/${problem.namespace}/${problem.name}`;
        if (problem.kind && problem.name && !origin.has(id) && !problem.kept)
          this.invalidObjects.set(id, problem);
      }
      for (const { kind, object, malformed } of entry.objects) {
        const id = `${kind}/${object.metadata.namespace}/${object.metadata.name}`;
        if (malformed && !origin.has(id)) place(path.relative(this.options.directory, file), kind, object);
      }
    }
    for (const id of Object.keys(this.created)) if (!origin.has(id)) delete this.created[id];
    for (const id of this.statuses.keys()) if (!origin.has(id)) this.statuses.delete(id);
    const { pods, slices } = workloadObjects(
      [...next.get('Service')!.values()],
      [...this.workloads.values()],
    );
    for (const pod of pods) next.get('Pod')!.set(`${pod.metadata.namespace}/${pod.metadata.name}`, pod);
    for (const slice of slices)
      next.get('EndpointSlice')!.set(`${slice.metadata.namespace}/${slice.metadata.name}`, slice);
    this.problemList = problems;
    this.save();
    this.replaceCaches(next, invalidBefore);
  }

  /**
   * Swaps in the new caches and emits Added, Updated and Deleted for what differs (status
   * aside; an object that became valid or malformed is updated too).
   */
  private replaceCaches(
    next: Map<SourceKind, Map<string, SourceObject>>,
    invalidBefore: ReadonlyMap<string, SourceProblem>,
  ): void {
    const events: SourceEvent[] = [];
    const content = ({ status: _status, ...rest }: SourceObject, problem: SourceProblem | undefined) =>
      `${JSON.stringify(rest)} ${problem?.message ?? ''}`;
    for (const kind of [...FILE_KINDS, 'Pod', 'EndpointSlice'] as SourceKind[]) {
      const before = this.caches.get(kind)!;
      const after = next.get(kind)!;
      for (const [key, object] of after) {
        const old = before.get(key);
        const id = `${kind}/${key}`;
        if (!old) events.push({ type: 'Added', kind, object });
        else if (content(old, invalidBefore.get(id)) !== content(object, this.invalidObjects.get(id)))
          events.push({ type: 'Updated', kind, object });
        else after.set(key, old);
      }
      for (const [key, object] of before) if (!after.has(key)) events.push({ type: 'Deleted', kind, object });
      this.caches.set(kind, after);
    }
    // A Service that is malformed is in no cache; when its problem changes, its export's
    // `Valid` message must follow.
    for (const id of new Set([...invalidBefore.keys(), ...this.invalidObjects.keys()])) {
      if (
        !id.startsWith('Service/') ||
        invalidBefore.get(id)?.message === this.invalidObjects.get(id)?.message
      )
        continue;
      const serviceExport = this.caches.get('ServiceExport')!.get(id.slice('Service/'.length));
      if (serviceExport) events.push({ type: 'Updated', kind: 'ServiceExport', object: serviceExport });
    }
    for (const event of events) this.onEvent(event);
  }
}

/** Every YAML or JSON file under `directory` (hidden files and folders skipped), with its size and time. */
async function listFiles(directory: string): Promise<Map<string, { mtimeMs: number; size: number }>> {
  const found = new Map<string, { mtimeMs: number; size: number }>();
  const visit = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      // The folder itself must be readable; a subfolder that is not is skipped.
      if (dir === directory && (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await visit(full);
      // Symbolic links to files are followed (a mounted ConfigMap is all links); links to
      // folders are not, so a loop cannot form.
      else if ((entry.isFile() || entry.isSymbolicLink()) && EXTENSIONS.has(path.extname(entry.name))) {
        const info = await stat(full).catch(() => undefined);
        if (info?.isFile()) found.set(full, { mtimeMs: info.mtimeMs, size: info.size });
      }
    }
  };
  await visit(directory);
  return found;
}
