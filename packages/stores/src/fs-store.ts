import { randomBytes } from 'node:crypto';
import { constants, lstatSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { AccessDeniedError, LocalIoError, localIoError, NotFoundError, PreconditionFailedError } from '@ferry/core';
import { bodyLength, bodyStream } from './body.js';
import { GroupFlush } from './group-flush.js';
import { assertValidKey, compareKeys, resolveRange } from './keys.js';
import type * as Store from './types.js';
import type { ObjectStore } from './types.js';

export interface FsStoreOptions {
  /** Absolute directory the store lives in; created when missing. */
  root: string;
  /**
   * Flush each object's bytes to disk before it becomes visible under its key (default true).
   * Puts share their flushes with the other puts in flight (GroupFlush).
   */
  fsync?: boolean;
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/** Renames of a finished put tried while deletes keep pruning its directory. */
const RENAME_ATTEMPTS = 5;

/** Where in-flight writes live: inside the root (same filesystem, so rename is atomic), never listed. */
const TMP_DIR = '.ferry-tmp';

/**
 * Temporary names: random per process, counted within it. Several processes may put into one
 * store; a name drawn from the random source for every put cost 1.7 % of a small-file mirror.
 */
const TMP_PREFIX = randomBytes(9).toString('hex');
let tmpCount = 0;
const tmpName = () => `${TMP_PREFIX}-${(tmpCount++).toString(36)}.part`;

/**
 * Etag from what identifies this file version: every put writes a new inode (temp + rename), so
 * (inode, size, mtime) changes on every overwrite and stays stable otherwise.
 */
function statEtag(st: Stats): string {
  return `${st.ino.toString(16)}-${st.size.toString(16)}-${Math.floor(st.mtimeMs * 1000).toString(16)}`;
}

/**
 * Bytes `start..end` of an open file as a stream of views of `into` (positional reads straight
 * into the caller's buffer, as large as it allows), then of fresh 1 MiB pieces for whatever does
 * not fit. The stream owns the handle and closes it when it ends or is destroyed.
 */
function readInto(handle: FileHandle, start: number, end: number, into: Uint8Array): Readable {
  async function* pieces(): AsyncGenerator<Uint8Array> {
    try {
      let at = start;
      let filled = 0;
      while (at <= end) {
        const inPlace = filled < into.length;
        const target = inPlace ? into.subarray(filled) : Buffer.allocUnsafe(1 << 20);
        const { bytesRead } = await handle.read(target, 0, Math.min(target.length, end - at + 1), at);
        if (bytesRead === 0) return;
        if (inPlace) filled += bytesRead;
        at += bytesRead;
        yield target.subarray(0, bytesRead);
      }
    } finally {
      await handle.close();
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}

/** Local-disk store: one file per object under `root`, keys mapped 1:1 to relative paths. */
export class FsStore implements ObjectStore {
  readonly url: string;
  readonly capabilities: Store.StoreCapabilities = { scheme: 'file', serverSideIfMatch: true, maxObjectSize: Number.MAX_SAFE_INTEGER };
  readonly #root: string;
  readonly #fsync: boolean;
  #realRoot: string | undefined;
  /**
   * Directories this store made or resolved and found to be themselves (no symlinked segment):
   * a put or read under one skips the mkdir and realpath (most of a small object's system calls).
   * A directory removed meanwhile (another process's delete pruned it) fails the rename with
   * ENOENT, and the put checks it again.
   */
  readonly #verified = new Set<string>();
  #tmpMade = false;
  #flusher: GroupFlush | undefined;

  constructor(options: FsStoreOptions) {
    this.#root = options.root;
    this.#fsync = options.fsync ?? true;
    this.url = `file://${options.root}`;
  }

  /**
   * The root resolved through symlinks (remembered once found). Reads need nothing else, so a
   * read-only directory (an import origin) works; a missing root is NotFound for reads, never
   * created by them (a mistyped origin must not look like an empty one), and made by the first put.
   */
  async #ready(create = false): Promise<string> {
    if (this.#realRoot) return this.#realRoot;
    if (create) {
      await mkdir(this.#root, { recursive: true }).catch((err) => {
        throw localIoError(err, 'store root', this.#root);
      });
    }
    try {
      this.#realRoot = await realpath(this.#root);
      return this.#realRoot;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${this.url}: no such directory`, { cause: err });
      throw localIoError(err, 'store root', this.#root);
    }
  }

  /** Where in-flight writes go; made on the first put. */
  async #tmpDir(): Promise<string> {
    const dir = join(await this.#ready(true), TMP_DIR);
    if (this.#tmpMade) return dir;
    await mkdir(dir, { recursive: true }).catch((err) => {
      throw localIoError(err, `${this.url}: cannot write`, TMP_DIR);
    });
    this.#tmpMade = true;
    return dir;
  }

  #remember(dir: string): void {
    // A bound on what one process keeps: chunk keys fan out over at most 65,536 directories.
    if (this.#verified.size >= 100_000) this.#verified.clear();
    this.#verified.add(dir);
  }

  /** Make the directory of `file` and check that it is itself (a symlink made meanwhile must not redirect the rename). */
  async #parentFor(key: string, file: string): Promise<void> {
    const parent = dirname(file);
    if (this.#verified.has(parent)) return;
    // The directories this mkdir made are this store's own; only the part that existed is checked
    // (a chunk key of a small volume usually needs two new ones: an lstat each saved).
    const made = await mkdir(parent, { recursive: true });
    if (!(await this.#isOwnDir(made ? dirname(made) : parent))) {
      throw new AccessDeniedError(`${this.url}: key ${key} resolves outside the store (symlink)`);
    }
    for (let dir = parent; made && dir.length >= made.length; dir = dirname(dir)) this.#remember(dir);
  }

  /**
   * Whether `dir` (under the resolved root) is a directory reached through no symlink: its parent
   * is, and it is a directory itself, not a link (one lstat per segment not checked before,
   * instead of a realpath's readlink of every segment). ENOENT when a segment is missing.
   *
   * The lstat here and in `head` is synchronous, as the listing's: on a local disk it takes
   * microseconds, while a promise costs a thread-pool round trip (a mirror of 20,000 small
   * chunks, which checks a new directory per chunk on each side and asks the target about each
   * chunk first, spent 12 % of its main thread there).
   */
  async #isOwnDir(dir: string): Promise<boolean> {
    if (this.#verified.has(dir) || dir === this.#realRoot) return true;
    const parent = dirname(dir);
    if (parent === dir || !(await this.#isOwnDir(parent))) return false;
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) return false;
    if (!st.isDirectory()) throw Object.assign(new Error(`not a directory: ${dir}`), { code: 'ENOTDIR' });
    this.#remember(dir);
    return true;
  }

  /** Where a valid key's file is, before any look at the disk. */
  async #fileOf(key: string): Promise<string> {
    assertValidKey(key);
    if (key === TMP_DIR || key.startsWith(`${TMP_DIR}/`)) throw new AccessDeniedError(`key ${key} is reserved`);
    return join(await this.#ready(), ...key.split('/'));
  }

  /**
   * The file of a key, refusing anything that would resolve outside the root: keys are
   * validated, and the resolved parent must be the expected directory (no symlinked segment).
   */
  async #pathOf(key: string, parentMustExist: boolean): Promise<string> {
    const file = await this.#fileOf(key);
    const parent = dirname(file);
    let own: boolean;
    try {
      own = await this.#isOwnDir(parent);
    } catch (err) {
      if (!parentMustExist && (err as NodeJS.ErrnoException).code === 'ENOENT') return file;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw new NotFoundError(`${this.url}: no object ${key}`, { cause: err });
      }
      throw localIoError(err, `${this.url}: key`, key);
    }
    if (!own) throw new AccessDeniedError(`${this.url}: key ${key} resolves outside the store (symlink)`);
    return file;
  }

  #info(key: string, st: Stats): Store.ObjectInfo {
    return { key, size: st.size, etag: statEtag(st), lastModified: Math.floor(st.mtimeMs) };
  }

  async head(key: string): Promise<Store.ObjectInfo> {
    // The file first: a missing one (a mirror asks of every chunk before copying it) is NotFound
    // after one lstat, instead of one per missing directory above it. One that exists is
    // answered only once its directories are found to be the store's own.
    const file = await this.#fileOf(key);
    let st: Stats | undefined;
    try {
      st = lstatSync(file, { throwIfNoEntry: false });
    } catch (err) {
      throw this.#translate(err, key);
    }
    if (!st) throw new NotFoundError(`${this.url}: no object ${key}`);
    await this.#pathOf(key, true);
    if (!st.isFile()) throw new NotFoundError(`${this.url}: no object ${key}`);
    return this.#info(key, st);
  }

  async get(key: string, options: Store.GetOptions = {}): Promise<Store.GetResult> {
    const file = await this.#pathOf(key, true);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw this.#translate(err, key);
    }
    try {
      // The open descriptor pins this version: a concurrent put renames a new inode over the
      // name, so checking the etag on the descriptor makes the check and the read agree.
      const st = await handle.stat();
      if (!st.isFile()) throw new NotFoundError(`${this.url}: no object ${key}`);
      const info = this.#info(key, st);
      if (options.ifMatch !== undefined && options.ifMatch !== info.etag) {
        throw new PreconditionFailedError(`${this.url}: ${key} changed (etag ${info.etag}, expected ${options.ifMatch})`);
      }
      const { start, end } = resolveRange(options.range, st.size, key);
      if (st.size === 0) {
        await handle.close();
        return { info, start: 0, end: -1, body: Readable.from([]) };
      }
      if (options.into && options.into.length > 0) return { info, start, end, body: readInto(handle, start, end, options.into) };
      // The stream owns the handle from here on and closes it when it ends or is destroyed.
      const body = handle.createReadStream({ start, end, highWaterMark: 1 << 20 });
      return { info, start, end, body };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async put(key: string, body: Store.PutBody): Promise<Store.PutResult> {
    await this.#ready(true);
    const file = await this.#pathOf(key, false);
    bodyLength(body);
    const tmp = join(await this.#tmpDir(), tmpName());
    try {
      // Read before the rename, which changes neither the inode nor the size and mtime of the etag.
      const written = await this.#writeTemp(tmp, body, key).catch((err) => {
        // The temporary directory was removed under this process: make it again next time.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.#tmpMade = false;
        throw err;
      });
      // A delete in another process prunes directories it empties, and may do so between the
      // mkdir and the rename, again and again while many keys of one directory come and go: make
      // the directory again and retry. Puts racing in one directory each retry on their own (one of
      // them forgetting the directory first must not make the others give up).
      for (let attempt = 1; ; attempt++) {
        await this.#parentFor(key, file);
        try {
          await rename(tmp, file);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= RENAME_ATTEMPTS) throw err;
          this.#verified.delete(dirname(file));
        }
      }
      return { etag: statEtag(written) };
    } catch (err) {
      await unlink(tmp).catch(() => {});
      if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('E')) {
        throw localIoError(err, `${this.url}: put`, key);
      }
      throw err;
    }
  }

  /**
   * Write a put's bytes to its temporary file, on disk when this returns (with fsync on). Every
   * put joins the next round of the store's GroupFlush: a batch of small objects costs one flush
   * instead of one per object, and the chunks a copy has in flight share one flush of the
   * filesystem instead of a journal commit each.
   */
  async #writeTemp(tmp: string, body: Store.PutBody, key: string): Promise<Stats> {
    const handle = await open(tmp, 'wx');
    try {
      if (body instanceof Uint8Array) await handle.writeFile(body);
      else for await (const piece of bodyStream(body, key)) await handle.write(piece as Uint8Array);
      if (this.#fsync) {
        this.#flusher ??= new GroupFlush({ dir: dirname(tmp) });
        await this.#flusher.flush(handle);
      }
      return await handle.stat();
    } finally {
      await handle.close();
    }
  }

  async sweepTemp(before: number): Promise<{ files: number; bytes: number }> {
    const found = { files: 0, bytes: 0 };
    let dir: string;
    try {
      dir = join(await this.#ready(), TMP_DIR);
    } catch (err) {
      if (err instanceof NotFoundError) return found;
      throw err;
    }
    // One directory read: temp files are few (one per write in flight or killed).
    const names = await readdir(dir).catch((err) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
      throw localIoError(err, `${this.url}: list`, TMP_DIR);
    });
    for (const name of names) {
      const file = join(dir, name);
      const st = await lstat(file).catch(() => undefined);
      if (!st?.isFile() || st.mtimeMs >= before) continue;
      await unlink(file).catch(() => {});
      found.files += 1;
      found.bytes += st.size;
    }
    return found;
  }

  async delete(key: string): Promise<void> {
    let file: string;
    try {
      file = await this.#pathOf(key, true);
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    try {
      await unlink(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code === 'EISDIR' || code === 'EPERM') {
        // A "directory key" is not an object: nothing to delete.
        const st = await lstat(file).catch(() => undefined);
        if (st?.isDirectory()) return;
      }
      throw localIoError(err, `${this.url}: delete`, key);
    }
    await this.#pruneEmptyDirs(dirname(file));
  }

  /** Remove directories left empty by a delete, up to the root, so listings stay cheap. */
  async #pruneEmptyDirs(dir: string): Promise<void> {
    const root = await this.#ready();
    let current = dir;
    while (current.startsWith(root + sep) && current !== root) {
      this.#verified.delete(current);
      try {
        await rm(current, { recursive: false });
      } catch {
        return;
      }
      current = dirname(current);
    }
  }

  async *list(prefix: string, options: Store.ListOptions = {}): AsyncIterable<Store.ListPage> {
    const pageSize = Math.max(1, Math.min(options.pageSize ?? 1000, 10_000));
    const root = await this.#ready();
    // Walk from the deepest directory the prefix fully names.
    const slash = prefix.lastIndexOf('/');
    const baseDir = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    if (
      baseDir
        ?.split('/')
        .slice(0, -1)
        .some((s) => s === '' || s === '.' || s === '..')
    )
      return;
    let items: Store.ObjectInfo[] = [];
    for await (const item of this.#walk(root, baseDir, prefix, options.cursor)) {
      items.push(item);
      if (items.length === pageSize) {
        yield { items, cursor: item.key };
        items = [];
      }
    }
    yield { items };
  }

  /**
   * Depth-first walk in exact key order. A directory `d` sorts as `d/`, which is where its keys
   * sort among its siblings; whole subtrees before the cursor are skipped without reading them.
   */
  async *#walk(root: string, dirKey: string, prefix: string, after: string | undefined): AsyncGenerator<Store.ObjectInfo> {
    let names: import('node:fs').Dirent[];
    try {
      names = await readdir(join(root, ...dirKey.split('/').filter(Boolean)), { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw localIoError(err, `${this.url}: list`, dirKey || '/');
    }
    const children = names
      .filter((d) => !(dirKey === '' && d.name === TMP_DIR) && (d.isFile() || d.isDirectory()))
      .map((d) => ({ dirent: d, sortKey: `${dirKey}${d.name}${d.isDirectory() ? '/' : ''}` }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { dirent, sortKey } of children) {
      // Prune what cannot match the prefix, and subtrees wholly at or before the cursor.
      if (!(sortKey.startsWith(prefix) || prefix.startsWith(sortKey))) continue;
      if (after !== undefined && compareKeys(sortKey, after) <= 0 && !after.startsWith(sortKey)) continue;
      if (dirent.isDirectory()) {
        yield* this.#walk(root, sortKey, prefix, after);
        continue;
      }
      if (!sortKey.startsWith(prefix)) continue;
      if (after !== undefined && compareKeys(sortKey, after) <= 0) continue; // the cursor itself was on the last page
      // Synchronous on purpose: lstat of a local file takes microseconds, while a promise costs a
      // thread-pool round trip per file (100,000 files: 0.3 s against 1 s).
      let st: Stats;
      try {
        st = lstatSync(join(root, ...sortKey.split('/')));
      } catch {
        continue; // deleted while listing
      }
      yield this.#info(sortKey, st);
    }
  }

  #translate(err: unknown, key: string): Error {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR')
      return new NotFoundError(`${this.url}: no object ${key}`, { cause: err });
    if (code === 'ELOOP') return new AccessDeniedError(`${this.url}: key ${key} is a symlink`, { cause: err });
    if (err instanceof Error && !(err instanceof LocalIoError) && code) return localIoError(err, `${this.url}:`, key);
    return err as Error;
  }
}
