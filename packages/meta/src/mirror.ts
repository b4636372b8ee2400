import { randomBytes } from 'node:crypto';
import { type ChunkId, type Entry, parseChunkId } from '@ferry/core';
import { chunkIdList, entryRest } from './entry.js';
import { parseStreamId } from './ids.js';
import { parseVolume, type VolumeKeys, volumeKeys } from './keys.js';
import type { ChangeRecord } from './record.js';
import type { RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';
import { runScript } from './scripts.js';

/** A full resync in progress: the snapshot id it started from and the set of paths it has seen. */
export interface Resync {
  snapshot: string;
  /** Key of this resync's own seen set. */
  seen: string;
}

/** A dead resync's seen set goes away after this long without a page. */
const SEEN_TTL_MS = 60 * 60 * 1000;

export interface ApplyResult {
  /** Records that changed the mirror (the rest were at or before the cursor). */
  applied: number;
  written: number;
  removed: number;
  cursor: string | undefined;
}

/**
 * The mirror side of a volume's metadata, in the mirror region's Redis: applying change records
 * atomically with the cursor, full resync from a snapshot, and which chunks this region's store
 * holds. The entries, path index and reference counts use the same keys and layout as the source,
 * so `Meta` reads a mirror exactly as it reads the source.
 */
export class MirrorMeta {
  readonly keys: VolumeKeys;
  readonly #redis: RedisClient;

  constructor(options: { redis: RedisClient; volume: string }) {
    this.keys = volumeKeys(parseVolume(options.volume));
    this.#redis = options.redis;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateRedisError(err, this.#redis);
    }
  }

  /** The last change-log id applied here; undefined for a mirror that never synced. */
  async cursor(): Promise<string | undefined> {
    return (await this.#call(() => this.#redis.get(this.keys.cursor))) ?? undefined;
  }

  /** Apply records in log order; each is one atomic script with the cursor, pipelined. */
  async apply(records: ChangeRecord[]): Promise<ApplyResult> {
    const result: ApplyResult = { applied: 0, written: 0, removed: 0, cursor: undefined };
    if (records.length === 0) return result;
    const { entries, paths, refs, unreferenced, cursor } = this.keys;
    const replies = await this.#call(() =>
      Promise.all(
        records.map((record) => {
          const args = [
            parseStreamId(record.id),
            record.del.length,
            ...record.del,
            ...record.put.flatMap((e) => [e.path, entryRest(e), chunkIdList(e)]),
          ];
          return runScript(this.#redis, 'apply', [entries, paths, refs, unreferenced, cursor], args) as Promise<
            [string, string, number?, number?]
          >;
        }),
      ),
    );
    for (const [status, id, written, removed] of replies) {
      result.cursor = id;
      if (status !== 'ok') continue;
      result.applied += 1;
      result.written += written ?? 0;
      result.removed += removed ?? 0;
    }
    return result;
  }

  /**
   * Start a full resync from a snapshot taken at `snapshotId`. Each resync records the paths it
   * sees in a set of its own (a random key next to `resyncSeen`, dropped by the last prune page
   * and expiring if the resync dies), so a replica that lost its lease mid-resync and another that
   * started one meanwhile cannot clear each other's record and prune entries the source still has.
   * `resyncInfo` says what the last resync was doing and counts them all.
   */
  async beginResync(snapshotId: string, reason = ''): Promise<Resync> {
    const snapshot = parseStreamId(snapshotId, 'snapshot id');
    const resync: Resync = { snapshot, seen: `${this.keys.resyncSeen}:${randomBytes(8).toString('hex')}` };
    await this.#call(() =>
      this.#redis
        .multi()
        .hdel(this.keys.resyncInfo, 'finished', 'removed')
        .hset(this.keys.resyncInfo, { snapshot, started: Date.now(), state: 'running', reason })
        .hincrby(this.keys.resyncInfo, 'count', 1)
        .exec(),
    );
    return resync;
  }

  /** Apply a page of source entries (their own versions) during a resync; returns how many were written. */
  async applySnapshot(resync: Resync, page: Entry[]): Promise<number> {
    if (page.length === 0) return 0;
    const { entries, paths, refs, unreferenced } = this.keys;
    const args = page.flatMap((e) => [e.path, parseStreamId(e.version), entryRest(e), chunkIdList(e)]);
    const written = await this.#call(() => runScript(this.#redis, 'snapshot', [entries, paths, refs, unreferenced, resync.seen], args));
    await this.#call(() => this.#redis.pexpire(resync.seen, SEEN_TTL_MS));
    return Number(written);
  }

  /**
   * Remove what the snapshot did not have, page by page through the path index, then (last page,
   * same step) set the cursor to the snapshot id. Returns how many entries were removed.
   * `beforePage` runs before each page is written (the watcher renews its lease there).
   */
  async finishResync(resync: Resync, options: { pageSize?: number; beforePage?: () => Promise<void> } = {}): Promise<number> {
    const pageSize = options.pageSize ?? 1000;
    const { entries, paths, refs, unreferenced, cursor } = this.keys;
    let removed = 0;
    let from = '-';
    for (;;) {
      const page = await this.#call(() => this.#redis.zrangebylex(paths, from, '+', 'LIMIT', 0, pageSize));
      const last = page.length < pageSize;
      const args = [resync.snapshot, last ? '1' : '0', ...page];
      await options.beforePage?.();
      removed += Number(
        await this.#call(() => runScript(this.#redis, 'prune', [entries, paths, refs, unreferenced, resync.seen, cursor], args)),
      );
      if (last) break;
      from = `(${page.at(-1)}`;
    }
    await this.#call(() => this.#redis.hset(this.keys.resyncInfo, { state: 'done', finished: Date.now(), removed }));
    return removed;
  }

  /** Of these chunks, the ones this region's store does not hold yet (order kept). */
  async missing(ids: readonly ChunkId[]): Promise<ChunkId[]> {
    if (ids.length === 0) return [];
    const flags = await this.#call(() => this.#redis.smismember(this.keys.present, ...ids));
    return ids.filter((_, i) => flags[i] === 0);
  }

  async isPresent(id: ChunkId): Promise<boolean> {
    return (await this.#call(() => this.#redis.sismember(this.keys.present, parseChunkId(id)))) === 1;
  }

  async markPresent(id: ChunkId): Promise<void> {
    await this.#call(() => this.#redis.sadd(this.keys.present, parseChunkId(id)));
  }

  /** Whether any entry in this region references the chunk. */
  async isReferenced(id: ChunkId): Promise<boolean> {
    return (await this.#call(() => this.#redis.hexists(this.keys.refs, parseChunkId(id)))) === 1;
  }

  /** Chunks referenced here, page by page (HSCAN of refs), for status and reconciliation. */
  async *referencedChunks(count = 1000): AsyncGenerator<ChunkId[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.#call(() => this.#redis.hscan(this.keys.refs, cursor, 'COUNT', count));
      cursor = next;
      yield flat.filter((_, i) => i % 2 === 0) as ChunkId[];
    } while (cursor !== '0');
  }
}
