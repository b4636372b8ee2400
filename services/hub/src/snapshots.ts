import { contentOf, type Entry, NotFoundError, revisionId } from '@ferry/core';
import { type ListOptions, type ListPage, Revisions } from '@ferry/meta';
import type { RepoFile } from './repos.js';

/** A repo's files at one revision. */
export interface RepoSnapshot {
  /** The id clients see: the Hub's commit id of an imported revision, else the content id. */
  revision: string;
  /** The content id (the hash of the file list), which names the revision's clone. */
  content: string;
  /** By path, in the volume's order (UTF-8 bytes). */
  files: RepoFile[];
  byPath: Map<string, RepoFile>;
  /** The newest file's mtime, ms. */
  lastModified: number;
}

export type ListFn = (dir: string, options: ListOptions) => Promise<ListPage>;

const PAGE = 5_000;

/** Every file under `folder` as a snapshot; undefined when the folder holds no file. */
export async function readSnapshot(list: ListFn, folder: string, lfsThreshold: number): Promise<RepoSnapshot | undefined> {
  const files: RepoFile[] = [];
  let cursor: string | undefined;
  do {
    let page: ListPage;
    try {
      page = await list(folder, { recursive: true, limit: PAGE, ...(cursor ? { cursor } : {}) });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    // A file where the repo's folder would be lists itself: it is no repo.
    for (const item of page.items)
      if (item.kind === 'file' && item.entry.path.startsWith(`${folder}/`)) files.push(fileOf(folder, item.entry, lfsThreshold));
    cursor = page.cursor;
  } while (cursor);
  if (files.length === 0) return undefined;
  const content = revisionId(files.map((f) => ({ path: f.path, size: f.entry.size, content: f.content })));
  return {
    revision: content,
    content,
    files,
    byPath: new Map(files.map((f) => [f.path, f])),
    lastModified: files.reduce((max, f) => Math.max(max, f.entry.mtime), 0),
  };
}

function fileOf(folder: string, entry: Entry, lfsThreshold: number): RepoFile {
  return { path: entry.path.slice(folder.length + 1), entry, lfs: entry.size >= lfsThreshold, content: contentOf(entry) };
}

export interface SnapshotsOptions {
  list: ListFn;
  lfsThreshold: number;
  /** The other names of a repo's revisions (name → content id): an import's Hub commit ids. */
  aliases?: (folder: string) => Promise<Map<string, string>>;
  /** How long a repo's listing answers for `main` before it is read again (a change shows within it). */
  freshMs?: number;
  /** Retained revisions kept in memory, at most this many … */
  keep?: number;
  /** … holding at most this many files together (a snapshot holds its entries: memory grows with files). */
  keepFiles?: number;
  now?: () => number;
}

/**
 * The snapshots of the repos being served: `main` read at most once per `freshMs` per repo (one
 * listing at a time, however many requests wait on it), and recent retained revisions likewise,
 * so the thousand HEAD and GET requests of one `snapshot_download` cost one listing, not one each.
 */
export class Snapshots {
  readonly #o: Required<Omit<SnapshotsOptions, 'now'>> & { now: () => number };
  readonly #main = new Map<string, { at: number; snapshot: Promise<RepoSnapshot | undefined> }>();
  /** folder + revision → snapshot, oldest use first. */
  readonly #kept = new Map<string, { snapshot: RepoSnapshot; checked: number }>();

  constructor(options: SnapshotsOptions) {
    this.#o = { freshMs: 1_000, keep: 16, keepFiles: 200_000, now: Date.now, aliases: async () => new Map(), ...options };
  }

  /** The repo's newest files, or undefined when it has none. */
  main(folder: string): Promise<RepoSnapshot | undefined> {
    const now = this.#o.now();
    const known = this.#main.get(folder);
    if (known && now - known.at < this.#o.freshMs) return known.snapshot;
    const snapshot = readSnapshot(this.#o.list, folder, this.#o.lfsThreshold).then(async (s) => {
      if (!s) return s;
      const named = await this.#named(folder, s);
      this.#keep(folder, named);
      return named;
    });
    // A listing older than freshMs answers nothing any more: drop those, so memory holds only
    // the repos asked for within the last freshMs.
    for (const [key, entry] of this.#main) if (now - entry.at >= this.#o.freshMs) this.#main.delete(key);
    this.#main.set(folder, { at: now, snapshot });
    // A failed listing is not remembered: the next request reads again.
    snapshot.catch(() => {
      if (this.#main.get(folder)?.snapshot === snapshot) this.#main.delete(folder);
    });
    return snapshot;
  }

  /**
   * The files of `revision` (`main` or a 40-hex id): main's, or a retained revision's clone.
   * `repo` is false when the repo has neither files nor that revision. A revision read once is
   * answered from memory for `freshMs`, then looked up again (retention may have dropped it).
   */
  async at(folder: string, revision: string): Promise<{ repo: boolean; snapshot?: RepoSnapshot }> {
    const key = `${folder}\0${revision}`;
    const kept = revision === 'main' ? undefined : this.#kept.get(key);
    if (kept && this.#o.now() - kept.checked < this.#o.freshMs) return { repo: true, snapshot: kept.snapshot };
    const main = await this.main(folder);
    if (revision === 'main' || revision === main?.revision || revision === main?.content) {
      return main ? { repo: true, snapshot: main } : { repo: false };
    }
    const content = (await this.#o.aliases(folder)).get(revision) ?? revision;
    const recorded = await readSnapshot(this.#o.list, Revisions.folder(folder, content), this.#o.lfsThreshold);
    if (recorded?.content === content) {
      const named = await this.#named(folder, recorded);
      this.#keep(folder, named, revision);
      return { repo: true, snapshot: named };
    }
    this.#kept.delete(key);
    return { repo: main !== undefined };
  }

  /** Files of the revisions held in memory (the hub's metrics show it). */
  get heldFiles(): number {
    let files = 0;
    for (const k of this.#kept.values()) files += k.snapshot.files.length;
    return files;
  }

  /** The snapshot under the name clients know it by (an import's Hub commit id), if it has one. */
  async #named(folder: string, snapshot: RepoSnapshot): Promise<RepoSnapshot> {
    for (const [name, id] of await this.#o.aliases(folder)) if (id === snapshot.content) return { ...snapshot, revision: name };
    return snapshot;
  }

  #keep(folder: string, snapshot: RepoSnapshot, asked = snapshot.revision): void {
    const key = `${folder}\0${asked}`;
    this.#kept.delete(key);
    this.#kept.set(key, { snapshot, checked: this.#o.now() });
    let files = this.heldFiles;
    // Oldest use first, never the one just kept.
    for (const [k, entry] of this.#kept) {
      if (this.#kept.size <= 1 || (this.#kept.size <= this.#o.keep && files <= this.#o.keepFiles)) break;
      this.#kept.delete(k);
      files -= entry.snapshot.files.length;
    }
  }
}
