import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { StateFile } from '@causeway/config';
import type { Workload } from '@causeway/discovery';
import { FILE_KINDS, parseObjects, type FileObject } from './file-objects.ts';
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
}

/** What file mode keeps across restarts. */
interface FileSourceState {
  /** `Kind/namespace/name` -> when the object was first read (its creationTimestamp). */
  created: Record<string, string>;
  /** Workloads registered by sidecars (each gets a grace period after a restart). */
  workloads: RegisteredWorkload[];
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

  constructor(
    private readonly options: {
      readonly directory: string;
      /** Where creation times and registered workloads are kept across restarts. */
      readonly statePath?: string;
      /** How long a workload's endpoints stay after its sidecar disconnects (default 10 s). */
      readonly workloadGraceMs?: number;
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
    const saved = await this.state?.read().catch((error: unknown) => {
      this.options.onError?.(error);
      return undefined;
    });
    this.created = saved?.created ?? {};
    // Workloads known before a restart stay for the grace period, so that endpoints do
    // not flap while sidecars reconnect.
    for (const registered of saved?.workloads ?? []) {
      this.workloads.set(registered.proxy, registered);
      this.expireLater(registered.proxy);
    }
    await this.scan();
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
   * A sidecar's workload, registered when it connects. A workload name already held by a
   * connected sidecar in the same namespace is refused.
   */
  register(proxy: string, owner: { namespace: string; serviceAccount: string }, workload: Workload): void {
    for (const other of this.workloads.values()) {
      if (
        other.proxy !== proxy &&
        other.namespace === owner.namespace &&
        other.workload.name === workload.name &&
        this.connected.has(other.proxy)
      )
        throw new WorkloadConflictError(
          `workload ${owner.namespace}/${workload.name} is already registered by proxy ${other.proxy}`,
        );
    }
    for (const other of [...this.workloads.values()])
      if (other.namespace === owner.namespace && other.workload.name === workload.name)
        this.workloads.delete(other.proxy);
    clearTimeout(this.graceTimers.get(proxy));
    this.graceTimers.delete(proxy);
    this.connected.add(proxy);
    this.workloads.set(proxy, { proxy, ...owner, workload });
    this.options.log?.('workload registered', { proxy, workload: `${owner.namespace}/${workload.name}` });
    this.workloadsChanged();
  }

  /** The sidecar's stream ended: its workload's endpoints go after the grace period. */
  disconnected(proxy: string): void {
    this.connected.delete(proxy);
    if (this.workloads.has(proxy)) this.expireLater(proxy);
  }

  private expireLater(proxy: string): void {
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
    }, this.options.workloadGraceMs ?? DEFAULT_GRACE_MS);
    timer.unref();
    this.graceTimers.set(proxy, timer);
  }

  private workloadsChanged(): void {
    if (this.stopped) return;
    this.apply();
    this.save();
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

  /** True if any file was added, changed or removed. */
  private async readFiles(): Promise<boolean> {
    const found = await listFiles(this.options.directory);
    let changed = false;
    for (const file of this.files.keys()) {
      if (!found.has(file)) {
        this.files.delete(file);
        changed = true;
      }
    }
    for (const [file, info] of found) {
      const before = this.files.get(file);
      if (before && before.mtimeMs === info.mtimeMs && before.size === info.size) continue;
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      const relative = path.relative(this.options.directory, file);
      const parsed = parseObjects(relative, text);
      this.files.set(file, {
        ...info,
        // Not YAML (often a save in progress): keep what the file held before.
        objects: parsed.parsed ? parsed.objects : (before?.objects ?? []),
        problems: parsed.problems,
      });
      for (const problem of parsed.problems)
        this.options.log?.('file not read', {
          file: problem.file,
          kind: problem.kind,
          name: problem.name,
          problem: problem.message,
        });
      changed = true;
    }
    return changed;
  }

  /** Recomputes every cache from the files and workloads and reports the differences. */
  private apply(): void {
    const next = new Map<SourceKind, Map<string, SourceObject>>(
      (Object.keys(SOURCE_KINDS) as SourceKind[]).map((kind) => [kind, new Map()]),
    );
    const problems: SourceProblem[] = [];
    const origin = new Map<string, string>();
    const invalidBefore = new Map(this.invalidObjects);
    this.invalidObjects.clear();
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const seen = new Set<string>();
    for (const [file, entry] of [...this.files].sort(([a], [b]) => a.localeCompare(b))) {
      const relative = path.relative(this.options.directory, file);
      for (const problem of entry.problems) {
        problems.push(problem);
        if (problem.kind && problem.name)
          this.invalidObjects.set(`${problem.kind}/${problem.namespace}/${problem.name}`, problem);
      }
      for (const { kind, object } of entry.objects) {
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
          continue;
        }
        origin.set(id, relative);
        seen.add(id);
        const createdAt =
          (object.metadata.creationTimestamp as unknown as string | undefined) ?? (this.created[id] ??= now);
        const status = this.statuses.get(id);
        next.get(kind)!.set(key, {
          ...object,
          metadata: { ...object.metadata, creationTimestamp: new Date(createdAt) },
          ...(status === undefined ? {} : { status }),
        });
      }
    }
    for (const id of Object.keys(this.created)) if (!seen.has(id)) delete this.created[id];
    for (const id of this.statuses.keys()) if (!seen.has(id)) this.statuses.delete(id);
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
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await visit(full);
      else if (entry.isFile() && EXTENSIONS.has(path.extname(entry.name))) {
        const info = await stat(full).catch(() => undefined);
        if (info) found.set(full, { mtimeMs: info.mtimeMs, size: info.size });
      }
    }
  };
  await visit(directory);
  return found;
}
