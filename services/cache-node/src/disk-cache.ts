import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ChunkId,
  chunkDigest,
  InvalidArgumentError,
  isChunkId,
  isNativeChunkId,
  type Logger,
  localIoError,
  messageOf,
  parseChunkId,
  sha256Of,
  silentLogger,
} from '@ferry/core';
import { verifyChunk } from '@ferry/fetch';
import { fileState, VerifiedStates } from './verified-state.js';

type FileHandle = Awaited<ReturnType<typeof open>>;

/** A held chunk opened for serving: its file matches the state recorded when it was verified. */
export interface OpenChunk {
  handle: FileHandle;
  /** Chunk bytes (an external chunk's file has its trailer after them). */
  size: number;
}

/**
 * External chunks have no hash in their id, so their files carry the sha256 of the bytes as a
 * 32-byte trailer written at store time: a bit flipped on disk is caught for them too.
 */
const TRAILER = 32;
/** In-flight writes: inside the cache dir (same filesystem, so rename is atomic), wiped at start. */
const TMP_DIR = '.tmp';
const FAN = /^[0-9a-f]{2}$/;
const TOUCH_EVERY_MS = 60_000;

export type EvictReason = 'lru' | 'corrupt' | 'missing' | 'delete';

export interface DiskCacheOptions {
  dir: string;
  /** Bytes of chunk files the cache may hold. */
  capacity: number;
  /**
   * fsync each file before it becomes visible (default false): a file torn by a crash fails
   * verification on its next read and is fetched again, so a cache can skip the cost.
   */
  fsync?: boolean;
  onEvict?: (id: ChunkId, reason: EvictReason) => void;
  logger?: Logger;
}

function diskBytes(id: ChunkId, size: number): number {
  return isNativeChunkId(id) ? size : size + TRAILER;
}

/**
 * Chunks on local disk under `<dir>/<hex[0:2]>/<hex[2:4]>/<id>`, at most `capacity` bytes, least
 * recently used evicted first. The index (id → size, in use order) lives in memory and is rebuilt
 * from the files at `open`, ordered by their access time (set on every hit; the mtime stays the
 * one recorded at verification). Bytes are verified when they enter (the caller verifies, `put`
 * records the file's size, mtime and inode); a file that still matches that state is served as it
 * is (`openVerified`), any other is hashed again first (`read`) and deleted when wrong. The
 * background scrub (`check`) catches what rots under an unchanged state.
 */
export class DiskCache {
  readonly dir: string;
  readonly capacity: number;
  readonly #fsync: boolean;
  readonly #onEvict: DiskCacheOptions['onEvict'];
  readonly #log: Logger;
  #states: VerifiedStates | undefined;
  /** id → chunk size; Map order is use order, oldest first. */
  readonly #index = new Map<ChunkId, number>();
  /** Bytes of indexed files plus bytes reserved by writes in flight. */
  #used = 0;
  #version = 0;
  /** Unlinks of evicted files still running: a new copy of the same id must not land before them. */
  readonly #unlinking = new Map<ChunkId, Promise<void>>();
  #sorted: { version: number; ids: ChunkId[] } | undefined;
  /** When each chunk's file time was last set. */
  readonly #touched = new Map<ChunkId, number>();

  private constructor(options: DiskCacheOptions) {
    if (!Number.isSafeInteger(options.capacity) || options.capacity <= 0) {
      throw new InvalidArgumentError(`invalid cache capacity ${options.capacity}: expected a positive number of bytes`);
    }
    this.dir = options.dir;
    this.capacity = options.capacity;
    this.#fsync = options.fsync ?? false;
    this.#onEvict = options.onEvict;
    this.#log = options.logger ?? silentLogger;
  }

  /** Open (creating) a cache dir: drop partial writes, index what is there, trim to capacity. */
  static async open(options: DiskCacheOptions): Promise<DiskCache> {
    const cache = new DiskCache(options);
    await cache.#rebuild();
    cache.#states = await VerifiedStates.load(options.dir, cache.#log);
    await cache.#states.compact((id) => cache.#index.has(id));
    return cache;
  }

  get used(): number {
    return this.#used;
  }

  get count(): number {
    return this.#index.size;
  }

  has(id: ChunkId): boolean {
    return this.#index.has(id);
  }

  sizeOf(id: ChunkId): number | undefined {
    return this.#index.get(id);
  }

  pathOf(id: ChunkId): string {
    const hex = chunkDigest(parseChunkId(id));
    return join(this.dir, hex.slice(0, 2), hex.slice(2, 4), id);
  }

  /**
   * Mark a chunk most recently used; the file's access time follows so the order survives a
   * restart (its mtime is kept: it is part of the verified state).
   */
  touch(id: ChunkId): void {
    const size = this.#index.get(id);
    if (size === undefined) return;
    this.#index.delete(id);
    this.#index.set(id, size);
    // The file's time only orders a rebuild after a restart: a minute's precision is plenty, and
    // a hot chunk read thousands of times a second costs no syscall per read.
    const now = Date.now();
    if (now - (this.#touched.get(id) ?? 0) < TOUCH_EVERY_MS) return;
    this.#touched.set(id, now);
    if (this.#touched.size > this.#index.size * 2) this.#touched.clear();
    const mtime = this.#states?.get(id)?.mtimeMs;
    utimes(this.pathOf(id), new Date(now), new Date(mtime ?? now)).catch(() => {});
  }

  /** Ids held, least recently used first (a snapshot, for the scrub). */
  ids(): ChunkId[] {
    return [...this.#index.keys()];
  }

  /**
   * A held chunk's open file when it is the very file that was verified (same size, mtime and
   * inode): serve it as it is, no hashing. `'unverified'` when the file is not in that state (a
   * restart lost the record, or the file changed): `read` verifies it. Undefined when not held.
   */
  async openVerified(id: ChunkId): Promise<OpenChunk | 'unverified' | undefined> {
    const size = this.#index.get(id);
    if (size === undefined) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(id), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw localIoError(err, 'read cached chunk', this.pathOf(id));
      if (this.#index.get(id) === size) this.#drop(id, 'missing');
      return undefined;
    }
    const st = await handle.stat().catch(() => undefined);
    if (!st || !this.#states?.matches(id, st)) {
      await handle.close();
      return 'unverified';
    }
    this.touch(id);
    return { handle, size };
  }

  /**
   * Hash a held chunk's file again (the scrub, or a reader that got a bad copy from here):
   * `'verified'` (and its state recorded), `'corrupt'` (deleted), `'missing'` when not held.
   * The chunk's recency is left alone.
   */
  async check(id: ChunkId): Promise<'verified' | 'corrupt' | 'missing'> {
    const held = await this.read(id, { touch: false });
    return held === undefined ? 'missing' : held === 'corrupt' ? 'corrupt' : 'verified';
  }

  /**
   * The verified bytes of a held chunk (and a touch), `'corrupt'` when the file failed
   * verification (it is deleted), undefined when the chunk is not held.
   */
  async read(id: ChunkId, options: { touch?: boolean } = {}): Promise<Buffer | 'corrupt' | undefined> {
    const size = this.#index.get(id);
    if (size === undefined) return undefined;
    let raw: Buffer;
    let state: ReturnType<typeof fileState>;
    try {
      const handle = await open(this.pathOf(id), 'r');
      try {
        state = await this.#wholeMsState(handle);
        raw = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw localIoError(err, 'read cached chunk', this.pathOf(id));
      // Evicted while we were reading, or removed behind our back.
      if (this.#index.get(id) === size) this.#drop(id, 'missing');
      return undefined;
    }
    let bytes: Buffer;
    try {
      bytes = await this.#verified(id, size, raw);
    } catch (err) {
      this.#log.error({ chunk: id, path: this.pathOf(id), reason: messageOf(err) }, 'cached chunk failed verification; deleting it');
      await this.delete(id, 'corrupt');
      return 'corrupt';
    }
    // The bytes were read through the handle whose state was taken first: that file is verified.
    if (this.#index.get(id) === size) await this.#states?.record(id, state);
    if (options.touch !== false) this.touch(id);
    return bytes;
  }

  /**
   * The file's state, its mtime made a whole millisecond first: `touch` sets times through
   * milliseconds, so a finer mtime could not be kept as it is.
   */
  async #wholeMsState(handle: FileHandle): Promise<ReturnType<typeof fileState>> {
    let st = await handle.stat();
    if (!Number.isInteger(st.mtimeMs)) {
      await handle.utimes(st.atime, new Date(Math.floor(st.mtimeMs)));
      st = await handle.stat();
    }
    return fileState(st);
  }

  /** The chunk's bytes of a file, or a thrown CorruptError. */
  async #verified(id: ChunkId, size: number, raw: Buffer): Promise<Buffer> {
    // An external chunk's file carries its sha256 as a trailer: checked like a recorded hash.
    const native = isNativeChunkId(id);
    const bytes = native ? raw : raw.subarray(0, raw.length - TRAILER);
    await verifyChunk({ id, size }, bytes, 'the cache disk', native ? undefined : raw.subarray(raw.length - TRAILER).toString('hex'));
    return bytes;
  }

  /**
   * Store bytes the caller has verified against the id, evicting least recently used chunks
   * first to make room. Written to a temp file and renamed, so a reader sees all or nothing.
   */
  async put(id: ChunkId, bytes: Buffer): Promise<'stored' | 'exists'> {
    if (this.#index.has(id)) {
      this.touch(id);
      return 'exists';
    }
    const need = diskBytes(id, bytes.length);
    if (need > this.capacity) {
      throw new InvalidArgumentError(`chunk ${id} (${bytes.length} bytes) is larger than the cache capacity (${this.capacity} bytes)`);
    }
    this.#makeRoom(need);
    this.#used += need;
    const final = this.pathOf(id);
    const tmp = join(this.dir, TMP_DIR, `${id}.${randomBytes(6).toString('hex')}`);
    let state: ReturnType<typeof fileState>;
    try {
      const file = await open(tmp, 'w');
      try {
        await file.writeFile(isNativeChunkId(id) ? bytes : Buffer.concat([bytes, Buffer.from(await sha256Of(bytes), 'hex')]));
        if (this.#fsync) await file.sync();
        // Renaming keeps the inode and the mtime: this is the state of the file readers get.
        state = await this.#wholeMsState(file);
      } finally {
        await file.close();
      }
      await mkdir(join(final, '..'), { recursive: true });
      await this.#unlinking.get(id);
      await rename(tmp, final);
    } catch (err) {
      this.#used -= need;
      await unlink(tmp).catch(() => {});
      throw localIoError(err, 'store chunk', final);
    }
    if (this.#index.has(id)) {
      // Another write of the same chunk won the race; the file is the same bytes either way.
      this.#used -= need;
      return 'exists';
    }
    this.#index.set(id, bytes.length);
    this.#version += 1;
    await this.#states?.record(id, state);
    return 'stored';
  }

  async delete(id: ChunkId, reason: EvictReason = 'delete'): Promise<boolean> {
    if (!this.#index.has(id)) return false;
    this.#drop(id, reason);
    await this.#unlink(id);
    return true;
  }

  #unlink(id: ChunkId): Promise<void> {
    const running = unlink(this.pathOf(id))
      .catch(() => {})
      .finally(() => {
        if (this.#unlinking.get(id) === running) this.#unlinking.delete(id);
      });
    this.#unlinking.set(id, running);
    return running;
  }

  /** Held ids after `cursor` in ascending order: `limit` of them and the cursor of the next page. */
  page(cursor: string | undefined, limit: number): { items: Array<{ id: ChunkId; size: number }>; cursor?: string } {
    if (this.#sorted?.version !== this.#version) this.#sorted = { version: this.#version, ids: [...this.#index.keys()].sort() };
    const ids = this.#sorted.ids;
    let lo = 0;
    let hi = ids.length;
    while (cursor !== undefined && lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ids[mid] as string) <= cursor) lo = mid + 1;
      else hi = mid;
    }
    const items: Array<{ id: ChunkId; size: number }> = [];
    let i = lo;
    for (; i < ids.length && items.length < limit; i++) {
      const id = ids[i] as ChunkId;
      const size = this.#index.get(id);
      if (size !== undefined) items.push({ id, size });
    }
    const last = items.at(-1);
    return i < ids.length && last ? { items, cursor: last.id } : { items };
  }

  #drop(id: ChunkId, reason: EvictReason): void {
    const size = this.#index.get(id);
    if (size === undefined) return;
    this.#index.delete(id);
    this.#states?.forget(id);
    this.#used -= diskBytes(id, size);
    this.#version += 1;
    this.#onEvict?.(id, reason);
  }

  #makeRoom(need: number): void {
    for (const [victim] of this.#index) {
      if (this.#used + need <= this.capacity) break;
      this.#drop(victim, 'lru');
      void this.#unlink(victim);
    }
  }

  async #rebuild(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      // A write cut short by a crash or kill never reached its final name: drop them all.
      await rm(join(this.dir, TMP_DIR), { recursive: true, force: true });
      await mkdir(join(this.dir, TMP_DIR));
    } catch (err) {
      throw localIoError(err, 'cache dir', this.dir);
    }
    const found: Array<{ id: ChunkId; size: number; at: number }> = [];
    for (const a of (await readdir(this.dir)).filter((n) => FAN.test(n))) {
      for (const b of (await readdir(join(this.dir, a)).catch(() => [])).filter((n) => FAN.test(n))) {
        const leaf = join(this.dir, a, b);
        const names = await readdir(leaf).catch(() => [] as string[]);
        await Promise.all(
          names.map(async (name) => {
            if (!isChunkId(name) || !chunkDigest(name).startsWith(a + b)) {
              this.#log.warn({ path: join(leaf, name) }, 'ignoring a file that is not a chunk in the cache dir');
              return;
            }
            const st: Stats | undefined = await stat(join(leaf, name)).catch(() => undefined);
            if (!st?.isFile()) return;
            const size = isNativeChunkId(name) ? st.size : st.size - TRAILER;
            if (size <= 0) {
              await unlink(join(leaf, name)).catch(() => {});
              return;
            }
            found.push({ id: name, size, at: Math.max(st.atimeMs, st.mtimeMs) });
          }),
        );
      }
    }
    found.sort((x, y) => x.at - y.at || (x.id < y.id ? -1 : 1));
    for (const f of found) {
      this.#index.set(f.id, f.size);
      this.#used += diskBytes(f.id, f.size);
    }
    this.#version += 1;
    // The capacity may have been lowered since the last run.
    this.#makeRoom(0);
    this.#log.info({ dir: this.dir, chunks: this.#index.size, used: this.#used, capacity: this.capacity }, 'cache index rebuilt');
  }
}
