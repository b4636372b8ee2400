import { baseName, type Entry, joinPath, NotFoundError, normalizePath } from '@ferry/core';
import type { ListOptions, ListPage } from '@ferry/meta';

/** What a name of the mount is. */
export type MountNode = { kind: 'file'; entry: Entry } | { kind: 'dir' };

/** The part of `Meta` the mount reads (the region's metadata). */
export interface NamespaceMeta {
  tryStat(path: string): Promise<Entry | undefined>;
  list(dir: string, options?: ListOptions): Promise<ListPage>;
}

export interface NamespaceOptions {
  meta: NamespaceMeta;
  /** Volume directory shown as the mount's root (`/` for the whole volume). */
  base: string;
  /** How long a looked-up name is trusted; changes in Redis show after at most this. */
  ttlMs: number;
  /** Names remembered at most (oldest dropped first). */
  maxCached?: number;
  now?: () => number;
}

interface Cached {
  node: MountNode | undefined;
  at: number;
}

/**
 * The region's metadata as a tree of names, seen from `base`: files are entries, directories
 * are path prefixes. Lookups are remembered for `ttlMs` (a listing remembers every file it saw,
 * so `ls -l` of a directory costs one listing, not one Redis call per name) and concurrent
 * lookups of one name share one call.
 */
export class Namespace {
  readonly base: string;
  readonly #meta: NamespaceMeta;
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, Cached>();
  readonly #inflight = new Map<string, Promise<MountNode | undefined>>();

  constructor(options: NamespaceOptions) {
    this.base = normalizePath(options.base);
    this.#meta = options.meta;
    this.#ttl = options.ttlMs;
    this.#max = options.maxCached ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  /** The volume path of a path inside the mount (`/` is the base). Throws InvalidPathError. */
  volumePath(mountPath: string): string {
    return mountPath === '/' ? this.base : joinPath(this.base, mountPath.slice(1));
  }

  /** The file or directory at a mount path, or undefined; remembered for `ttlMs`. */
  lookup(mountPath: string): Promise<MountNode | undefined> {
    const path = this.volumePath(mountPath);
    const hit = this.#cache.get(path);
    if (hit && this.#now() - hit.at < this.#ttl) return Promise.resolve(hit.node);
    const running = this.#inflight.get(path);
    if (running) return running;
    const started = this.#now();
    const promise = this.#resolve(path)
      .then((node) => {
        this.#remember(path, node, started);
        return node;
      })
      .finally(() => this.#inflight.delete(path));
    this.#inflight.set(path, promise);
    return promise;
  }

  /** The names in a directory with what each is (every page of the listing). */
  async readdir(mountPath: string): Promise<Array<{ name: string; node: MountNode }>> {
    const dir = this.volumePath(mountPath);
    const started = this.#now();
    const children: Array<{ name: string; node: MountNode }> = [];
    let cursor: string | undefined;
    do {
      const page = await this.#meta.list(dir, { limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const item of page.items) {
        const path = item.kind === 'file' ? item.entry.path : item.path;
        // A file listed at the directory's own path means the "directory" is a file.
        if (path === dir) throw new NotFoundError(`${dir}: not a directory`);
        const node: MountNode = item.kind === 'file' ? { kind: 'file', entry: item.entry } : { kind: 'dir' };
        this.#remember(path, node, started);
        children.push({ name: baseName(path), node });
      }
      cursor = page.cursor;
    } while (cursor);
    return children;
  }

  async #resolve(path: string): Promise<MountNode | undefined> {
    if (path === '/') return { kind: 'dir' };
    const entry = await this.#meta.tryStat(path);
    if (entry) return { kind: 'file', entry };
    try {
      await this.#meta.list(path, { limit: 1 });
      return { kind: 'dir' };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  #remember(path: string, node: MountNode | undefined, at: number): void {
    this.#cache.delete(path);
    this.#cache.set(path, { node, at });
    if (this.#cache.size > this.#max) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
  }
}
