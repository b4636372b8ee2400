import { contentOf, type Entry, InvalidArgumentError, NotFoundError, REVISION_NAME, revisionId } from '@ferry/core';
import type { ListPage } from './list.js';
import { type Meta, RESERVED } from './meta.js';

/**
 * Retained revisions of repos (folders under the hub's root). A revision is a metadata-only
 * clone of the repo's entries under `/.ferry/rev/<repo>/<id>/`: the same chunks, so the
 * reference counts hold them against garbage collection in every region, mirrors replicate it
 * like any folder (resync included), and nothing new is needed in Redis. `/.ferry` is left out of
 * a listing of `/`, so `ls`, the gateway and the mount do not show it.
 *
 * Recording is idempotent (the id is the hash of the file list, and a clone already there is
 * kept), so a writer records the repo's current files before a change (in case a crash after an
 * earlier change skipped it) and after it.
 */

export const REVISIONS_ROOT = `${RESERVED}/rev`;
/**
 * Other names of a revision: an imported repo's revision is also known by the Hub's commit id,
 * an empty entry `/.ferry/alias/<repo>/<name>/<content id>` (replicated like any entry).
 */
export const ALIASES_ROOT = `${RESERVED}/alias`;

export interface RevisionInfo {
  id: string;
  /** When the revision was recorded, ms. */
  time: number;
  files: number;
  bytes: number;
}

export interface RetainOptions {
  /** Revisions kept per repo, newest first. */
  keep: number;
  /** Revisions younger than this are kept whatever their number, ms. */
  keepFor: number;
  now?: number;
}

const PAGE = 5_000;

export class Revisions {
  readonly #meta: Meta;

  constructor(meta: Meta) {
    this.#meta = meta;
  }

  /** The folder of a revision of `repo` (an absolute volume path). */
  static folder(repo: string, id: string): string {
    return `${REVISIONS_ROOT}${repo}/${id}`;
  }

  /** The repo's files now, paths relative to it; empty when it has none. */
  async #files(folder: string): Promise<Entry[]> {
    const out: Entry[] = [];
    let cursor: string | undefined;
    do {
      let page: ListPage;
      try {
        page = await this.#meta.list(folder, { recursive: true, limit: PAGE, ...(cursor ? { cursor } : {}) });
      } catch (err) {
        if (err instanceof NotFoundError) return [];
        throw err;
      }
      for (const item of page.items) if (item.kind === 'file' && item.entry.path.startsWith(`${folder}/`)) out.push(item.entry);
      cursor = page.cursor;
    } while (cursor);
    return out;
  }

  /** The id of the repo's current files (main), or undefined when it has none. */
  async mainId(repo: string): Promise<string | undefined> {
    const files = await this.#files(repo);
    return files.length === 0 ? undefined : idOf(repo, files);
  }

  /**
   * Record the repo's current files as a revision (a clone of their entries) unless it is already
   * recorded. Undefined when the repo has no files.
   */
  async record(repo: string, now = Date.now()): Promise<{ id: string; created: boolean } | undefined> {
    const files = await this.#files(repo);
    if (files.length === 0) return undefined;
    const id = idOf(repo, files);
    const folder = Revisions.folder(repo, id);
    // A clone is committed in steps; a crash mid-way leaves part of it, finished by the next record.
    const have = new Set((await this.#files(folder)).map((e) => e.path));
    const missing = files.filter((e) => !have.has(folder + e.path.slice(repo.length)));
    if (missing.length === 0) return { id, created: false };
    await this.#meta.commit(missing.map(({ version: _v, ...e }) => ({ ...e, path: folder + e.path.slice(repo.length), mtime: now })));
    return { id, created: true };
  }

  /** The repo's recorded revisions, newest first. */
  async list(repo: string): Promise<RevisionInfo[]> {
    const root = `${REVISIONS_ROOT}${repo}`;
    const out: RevisionInfo[] = [];
    for (const id of await this.#ids(root)) {
      const files = await this.#files(`${root}/${id}`);
      if (files.length === 0) continue;
      out.push({
        id,
        time: files.reduce((max, e) => Math.max(max, e.mtime), 0),
        files: files.length,
        bytes: files.reduce((n, e) => n + e.size, 0),
      });
    }
    return newestFirst(out);
  }

  /** The ids of the revision folders under `root`. */
  async #ids(root: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      let page: ListPage;
      try {
        page = await this.#meta.list(root, { limit: 1000, ...(cursor ? { cursor } : {}) });
      } catch (err) {
        if (err instanceof NotFoundError) return [];
        throw err;
      }
      for (const item of page.items) {
        const name = item.kind === 'dir' ? item.path.slice(root.length + 1) : '';
        if (/^[0-9a-f]{40}$/.test(name)) ids.push(name);
      }
      cursor = page.cursor;
    } while (cursor);
    return ids;
  }

  /**
   * The revisions' ids and times only, newest first: one entry read per revision (a recording
   * gives all its entries the same mtime), where `list` reads every entry to count files and bytes.
   */
  async #ages(repo: string): Promise<Array<{ id: string; time: number }>> {
    const root = `${REVISIONS_ROOT}${repo}`;
    const out: Array<{ id: string; time: number }> = [];
    for (const id of await this.#ids(root)) {
      const first = (await this.#meta.list(`${root}/${id}`, { recursive: true, limit: 1 }).catch(() => undefined))?.items[0];
      if (first?.kind === 'file') out.push({ id, time: first.entry.mtime });
    }
    return newestFirst(out);
  }

  /**
   * Drop the revisions the retention does not keep: beyond the newest `keep`, older than
   * `keepFor`, and never main's. Their chunks go once nothing else references them, after the
   * region's GC grace. Returns the ids removed.
   */
  async prune(repo: string, options: RetainOptions): Promise<string[]> {
    const now = options.now ?? Date.now();
    const main = await this.mainId(repo);
    const removed: string[] = [];
    const kept = new Set(main ? [main] : []);
    for (const [i, r] of (await this.#ages(repo)).entries()) {
      if (i < options.keep || now - r.time < options.keepFor || r.id === main) {
        kept.add(r.id);
        continue;
      }
      await this.#meta.delete(Revisions.folder(repo, r.id), { recursive: true });
      removed.push(r.id);
    }
    for (const [name, id] of await this.aliases(repo)) {
      if (!kept.has(id)) await this.#meta.delete(`${ALIASES_ROOT}${repo}/${name}`, { recursive: true });
    }
    return removed;
  }

  /** Give the revision `id` of `repo` another name (the Hub's commit id of an import). */
  async alias(repo: string, id: string, name: string, now = Date.now()): Promise<void> {
    if (!/^[0-9a-f]{40}$/.test(name) || !/^[0-9a-f]{40}$/.test(id))
      throw new InvalidArgumentError(`alias ${name} of ${id}: expected 40-hex ids`);
    if (name === id || (await this.aliases(repo)).get(name) === id) return;
    await this.#meta.commit([{ path: `${ALIASES_ROOT}${repo}/${name}/${id}`, size: 0, mtime: now, chunkSize: 1, chunks: [] }]);
  }

  /** The repo's other revision names: name → revision id. */
  async aliases(repo: string): Promise<Map<string, string>> {
    const root = `${ALIASES_ROOT}${repo}`;
    const out = new Map<string, string>();
    for (const e of await this.#files(root)) {
      const [name, id] = e.path.slice(root.length + 1).split('/');
      if (name && id) out.set(name, id);
    }
    return out;
  }

  /**
   * The volume path that `path@revision` names: inside the revision's clone when `path` is (in)
   * a repo with that revision recorded; `path` itself for `main`. NotFoundError naming the
   * revision when no repo at or above `path` recorded it.
   */
  async resolve(path: string, revision: string): Promise<string> {
    if (!REVISION_NAME.test(revision))
      throw new InvalidArgumentError(`invalid revision "${revision}": expected main or a 40-hex revision id`);
    if (revision === 'main') return path;
    const parts = path.split('/').filter(Boolean);
    for (let n = parts.length; n >= 1; n--) {
      const repo = `/${parts.slice(0, n).join('/')}`;
      const folder = Revisions.folder(repo, (await this.aliases(repo)).get(revision) ?? revision);
      if ((await this.#meta.list(folder, { limit: 1 }).catch(() => undefined))?.items.length) {
        return folder + path.slice(repo.length);
      }
    }
    throw new NotFoundError(`${path}@${revision}: no revision ${revision} of ${path} or a folder above it`);
  }
}

function newestFirst<T extends { id: string; time: number }>(revisions: T[]): T[] {
  return revisions.sort((a, b) => b.time - a.time || (a.id < b.id ? -1 : 1));
}

function idOf(repo: string, files: readonly Entry[]): string {
  return revisionId(files.map((e) => ({ path: e.path.slice(repo.length + 1), size: e.size, content: contentOf(e) })));
}

/** `path@revision` split, when the part after the last `@` is `main` or a 40-hex id; else the path alone. */
export function splitRevision(spec: string): { path: string; revision?: string } {
  const at = spec.lastIndexOf('@');
  if (at <= 0) return { path: spec };
  const revision = spec.slice(at + 1);
  return REVISION_NAME.test(revision) ? { path: spec.slice(0, at), revision } : { path: spec };
}

/**
 * The repos a change at `path` may touch, given the hub's `root`: the repo `path` is in, or
 * every repo under `path` when it is above repo level (`/hf/acme`, `/hf`, `/`). Models are
 * `<root>/<org>/<name>`, datasets `<root>/datasets/<org>/<name>`.
 */
export async function reposUnder(meta: Meta, root: string, path: string): Promise<string[]> {
  const inside = path === root || path.startsWith(`${root}/`);
  if (!inside && !(root.startsWith(`${path}/`) || path === '/')) return [];
  const parts = inside ? path.slice(root.length).split('/').filter(Boolean) : [];
  const depth = parts[0] === 'datasets' ? 3 : 2;
  if (parts.length >= depth) return [`${root}/${parts.slice(0, depth).join('/')}`];
  const dirs = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    let cursor: string | undefined;
    do {
      let page: ListPage;
      try {
        page = await meta.list(dir, { limit: 1000, ...(cursor ? { cursor } : {}) });
      } catch (err) {
        if (err instanceof NotFoundError) return out;
        throw err;
      }
      for (const item of page.items) if (item.kind === 'dir') out.push(item.path);
      cursor = page.cursor;
    } while (cursor);
    return out;
  };
  // Walk down from the deepest folder given to repo level.
  let level = [inside ? `${root}${parts.length ? `/${parts.join('/')}` : ''}` : root];
  let at = parts.length;
  const repos: string[] = [];
  while (level.length > 0) {
    const next: string[] = [];
    for (const dir of level) {
      const rel = dir.slice(root.length).split('/').filter(Boolean);
      const want = rel[0] === 'datasets' ? 3 : 2;
      if (rel.length >= want) repos.push(dir);
      else next.push(...(await dirs(dir)));
    }
    level = next;
    at++;
    if (at > 3) break;
  }
  return repos;
}
