import { type ChunkId, ConflictError, type Entry, parseChunkId } from '@ferry/core';
import { type ChunkCounts, type CopyFailure, MirrorChunks } from './chunks.js';
import { chunkIdList, entryRest } from './entry.js';
import { parseStreamId } from './ids.js';
import { parseVolume, type VolumeKeys, volumeKeys } from './keys.js';
import type { ChangeRecord } from './record.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';
import { beginResync, finishResync, type Resync, type ResyncStart, type ResyncState, readResyncState, snapshotPage } from './resync.js';
import { runScript } from './scripts.js';

export interface ApplyResult {
  /** Records that changed the mirror (the rest were at or before the cursor). */
  applied: number;
  written: number;
  removed: number;
  cursor: string | undefined;
}

/** What the mirror knows of the source's history at its cursor (the tracking hash). */
export interface Tracking {
  /** The source's epoch the cursor belongs to; undefined for a mirror that synced before epochs existed. */
  epoch?: string;
  /** Records the source had ever added up to the cursor, when known (lag in records = the source's count now − this). */
  added?: number;
}

/**
 * A fencing token from the watcher lease (Lease.hold). Every write of the mirror's replicated
 * state passes one; the scripts refuse it (FencedError) unless it is the current token. '' is for
 * tools and tests in a region where no watcher ever took the lease.
 */
export type FenceToken = string;

/**
 * The mirror side of a volume's metadata, in the mirror region's Redis: applying change records
 * atomically with the cursor, full resync from a snapshot, what the mirror knows of the source's
 * history, and which chunks this region's store holds (`chunks`). The entries, path index and
 * reference counts use the same keys and layout as the source, so `Meta` reads a mirror exactly
 * as it reads the source.
 */
export class MirrorMeta extends RedisPart {
  readonly keys: VolumeKeys;
  /** Chunks: present, missing, copy failures, reconciliation. */
  readonly chunks: MirrorChunks;

  constructor(options: { redis: RedisClient; volume: string }) {
    super(options.redis);
    this.keys = volumeKeys(parseVolume(options.volume));
    this.chunks = new MirrorChunks({ redis: this.redis, keys: this.keys });
  }

  /** The last change-log id applied here; undefined for a mirror that never synced. */
  async cursor(): Promise<string | undefined> {
    return (await this.call(() => this.redis.get(this.keys.cursor))) ?? undefined;
  }

  async tracking(): Promise<Tracking> {
    const { epoch, added } = await this.call(() => this.redis.hgetall(this.keys.tracking));
    return { ...(epoch ? { epoch } : {}), ...(added !== undefined && added !== '' ? { added: Number(added) } : {}) };
  }

  /**
   * Apply records in log order; each is one atomic script with the cursor, pipelined. `added` is
   * the source's count of records ever added up to the first record (then one more per record),
   * when the caller knows it. FencedError when `token` is not the current one; ConflictError
   * while a resync is unfinished.
   */
  async apply(records: ChangeRecord[], options: { token?: FenceToken; added?: number } = {}): Promise<ApplyResult> {
    const result: ApplyResult = { applied: 0, written: 0, removed: 0, cursor: undefined };
    if (records.length === 0) return result;
    const k = this.keys;
    const keys = [
      k.entries,
      k.paths,
      k.refs,
      k.unreferenced,
      k.cursor,
      k.fence,
      k.resyncInfo,
      k.present,
      k.missing,
      k.tracking,
      k.copyFailures,
    ];
    const replies = await this.call(() =>
      Promise.all(
        records.map((record, i) => {
          const args = [
            options.token ?? '',
            parseStreamId(record.id),
            options.added === undefined ? '' : options.added + i,
            record.del.length,
            ...record.del,
            ...record.put.flatMap((e) => [e.path, entryRest(e), chunkIdList(e)]),
          ];
          return runScript(this.redis, 'apply', keys, args) as Promise<[string, string, number?, number?]>;
        }),
      ),
    );
    for (const [status, id, written, removed] of replies) {
      if (status === 'resync') throw new ConflictError(`cannot apply change records: a full resync is ${id}`);
      result.cursor = id;
      if (status !== 'ok') continue;
      result.applied += 1;
      result.written += written ?? 0;
      result.removed += removed ?? 0;
    }
    return result;
  }

  /**
   * Record the source's epoch and/or its count of added records for the cursor `cursor`, unless
   * the cursor has moved meanwhile; returns whether it was recorded.
   */
  async track(cursor: string, facts: { epoch?: string; added?: number }, token: FenceToken = ''): Promise<boolean> {
    const args = [token, parseStreamId(cursor), facts.epoch ?? '', facts.added === undefined ? '' : facts.added];
    const reply = await this.call(() => runScript(this.redis, 'track', [this.keys.cursor, this.keys.fence, this.keys.tracking], args));
    return Number(reply) === 1;
  }

  /** The resync in progress or the last one, if any. */
  /** The fields of the resync in progress or the last one, as stored (for status). */
  resyncInfo(): Promise<Record<string, string>> {
    return this.call(() => this.redis.hgetall(this.keys.resyncInfo));
  }

  resyncState(): Promise<ResyncState | undefined> {
    return this.call(() => readResyncState(this.redis, this.keys));
  }

  /**
   * Start a full resync from a snapshot of the source taken at `start.snapshot` (with the source's
   * epoch and added count at that moment). Drops any earlier resync's seen set; its state has no
   * TTL. See resync.ts.
   */
  beginResync(start: ResyncStart, token: FenceToken = ''): Promise<Resync> {
    return this.call(() => beginResync(this.redis, this.keys, start, token));
  }

  /** Apply a page of source entries (their own versions) during a resync; returns how many were written. */
  applySnapshot(resync: Resync, page: Entry[], token: FenceToken = ''): Promise<number> {
    return this.call(() => snapshotPage(this.redis, this.keys, resync, page, token));
  }

  /**
   * Remove what the snapshot did not have, page by page through the path index, then (last page,
   * same step) set the cursor to the snapshot id. Returns how many entries were removed.
   * ResyncIncompleteError (nothing removed) when the seen set does not account for every page.
   */
  finishResync(resync: Resync, options: { token?: FenceToken; pageSize?: number } = {}): Promise<number> {
    return this.call(() => finishResync(this.redis, this.keys, resync, options.token ?? '', options.pageSize ?? 1000));
  }

  /** Of these chunks, the ones this region's store does not hold yet (order kept). */
  missing(ids: readonly ChunkId[]): Promise<ChunkId[]> {
    return this.chunks.notPresent(ids);
  }

  isPresent(id: ChunkId): Promise<boolean> {
    return this.chunks.isPresent(id);
  }

  serverTime(): Promise<number> {
    return this.chunks.serverTime();
  }

  markPresent(id: ChunkId, options: { since?: number; copied?: number } = {}): Promise<boolean> {
    return this.chunks.markPresent(id, options);
  }

  /** Whether any entry in this region references the chunk. */
  async isReferenced(id: ChunkId): Promise<boolean> {
    return (await this.call(() => this.redis.hexists(this.keys.refs, parseChunkId(id)))) === 1;
  }

  recordCopyFailure(failure: CopyFailure): Promise<boolean> {
    return this.chunks.recordFailure(failure);
  }

  /** Referenced, missing and failing chunk counts, read from counters (no scan). */
  counts(): Promise<ChunkCounts> {
    return this.chunks.counts();
  }
}
