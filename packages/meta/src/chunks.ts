import { type ChunkId, coalesce, isChunkId, parseChunkId } from '@ferry/core';
import type { VolumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';
import { runScript } from './scripts.js';

/** Most backfill requests a region's list keeps. */
export const BACKFILL_MAX = 10_000;
/** Longest request taken from the list (a chunk id and a path of at most 1 KiB, as JSON). */
const BACKFILL_REQUEST_MAX = 2_048;

/** The last failed copy of a chunk, kept until the chunk is present or no longer referenced. */
export interface CopyFailure {
  chunk: ChunkId;
  /** The error's one-line message. */
  error: string;
  /** Its stable code (a FerryError code, or OTHER). */
  code: string;
  /** Attempts the failed job had made. */
  attempts: number;
  /** ms since the epoch. */
  at: number;
  /** The copy job's data, so the copy can be queued again without looking the chunk up (retry-failed). */
  request?: Record<string, unknown>;
}

export interface ChunkCounts {
  /** Distinct chunks referenced by the region's entries. */
  referenced: number;
  /** Referenced chunks the store does not hold yet. */
  missing: number;
  /** Chunks whose last copy failed. */
  failing: number;
}

/**
 * A mirror's record of its chunks: which its store holds (`present`), which it references and
 * lacks (`missing`, kept in step by the apply, snapshot and prune scripts and corrected by
 * `reconcile`), and the last failure of each copy that failed. Counts come from set and hash
 * sizes, so reading them costs the same for ten chunks and ten million.
 */
export class MirrorChunks extends RedisPart {
  readonly #keys: VolumeKeys;
  /** present.lua for every chunk marked while the last call was in flight: one round trip for a batch of copies. */
  readonly #present: (item: [chunk: string, since: string, copied: string]) => Promise<boolean>;

  constructor(options: { redis: RedisClient; keys: VolumeKeys }) {
    super(options.redis);
    this.#keys = options.keys;
    const k = this.#keys;
    const keys = [k.present, k.missing, k.copyFailures, k.gcClaims, k.gcDeleted, k.copied, k.refs, k.unreferenced];
    this.#present = coalesce(async (items: Array<[string, string, string]>) => {
      const marked = (await this.call(() => runScript(this.redis, 'present', keys, items.flat()))) as number[];
      return marked.map((flag) => flag === 1);
    }, 500);
  }

  /** Of these chunks, the ones this region's store does not hold yet (order kept). */
  async notPresent(ids: readonly ChunkId[]): Promise<ChunkId[]> {
    if (ids.length === 0) return [];
    const flags = await this.call(() => this.redis.smismember(this.#keys.present, ...ids));
    return ids.filter((_, i) => flags[i] === 0);
  }

  /**
   * Ask the replicator to copy chunks a reader had to fetch from outside the region (backfill):
   * the requests go to the region's backfill list, capped at `BACKFILL_MAX` (the oldest drop out;
   * the reconciler finds every missing chunk anyway). The one write a reader's Redis user may make.
   */
  async requestBackfill(requests: readonly object[]): Promise<void> {
    if (requests.length === 0) return;
    const key = this.#keys.backfill;
    await this.call(() =>
      this.redis
        .multi()
        .lpush(key, ...requests.map((r) => JSON.stringify(r)))
        .ltrim(key, 0, BACKFILL_MAX - 1)
        .exec(),
    );
  }

  /**
   * Take up to `max` backfill requests, oldest first, as parsed JSON. They come from readers: the
   * caller checks each one before it copies anything.
   */
  async takeBackfill(max: number): Promise<unknown[]> {
    const raw = await this.call(() => this.redis.rpop(this.#keys.backfill, max));
    const requests: unknown[] = [];
    for (const text of raw ?? []) {
      // A request is a chunk id and a path: anything much longer is none a reader makes.
      if (text.length > BACKFILL_REQUEST_MAX) continue;
      try {
        requests.push(JSON.parse(text));
      } catch {
        // Not JSON: not a request any Ferry reader makes; dropped like any other invalid one.
      }
    }
    return requests;
  }

  /** Of these chunks, the ones this region references and its store lacks (the missing set). */
  async whichMissing(ids: readonly ChunkId[]): Promise<ChunkId[]> {
    if (ids.length === 0) return [];
    const flags = await this.call(() => this.redis.smismember(this.#keys.missing, ...ids));
    return ids.filter((_, i) => flags[i] === 1);
  }

  async isPresent(id: ChunkId): Promise<boolean> {
    return (await this.call(() => this.redis.sismember(this.#keys.present, parseChunkId(id)))) === 1;
  }

  /**
   * The chunk is in this region's store: present, not missing, no failure to report. Any replica
   * may say so (the bytes are there whoever copied them), so this is not fenced. Refused (false)
   * while garbage collection has the chunk claimed or deleted it at or after `since` (the server
   * time before the caller looked at the store): the caller copies it again. `copied`: the bytes
   * a copy just wrote, counted in the region's copied totals (absent when the chunk was found).
   */
  async markPresent(id: ChunkId, options: { since?: number; copied?: number } = {}): Promise<boolean> {
    const since = options.since === undefined ? '' : String(Math.floor(options.since));
    const copied = options.copied === undefined ? '' : String(Math.floor(options.copied));
    return this.#present([parseChunkId(id), since, copied]);
  }

  /** Chunks and bytes the copy workers wrote into this region's store, ever (rates come from two readings). */
  async copied(): Promise<{ chunks: number; bytes: number }> {
    const info = await this.call(() => this.redis.hgetall(this.#keys.copied));
    return { chunks: Number(info.chunks ?? 0), bytes: Number(info.bytes ?? 0) };
  }

  /** The Redis server's clock, ms (`markPresent`'s `since`). */
  async serverTime(): Promise<number> {
    const [sec, usec] = await this.call(() => this.redis.time());
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  /**
   * Keep the failure, unless the chunk is present by now or no longer referenced (another job
   * for the same chunk finished first): returns whether it was kept.
   */
  async recordFailure(failure: CopyFailure): Promise<boolean> {
    const chunk = parseChunkId(failure.chunk);
    const k = this.#keys;
    const args = [chunk, JSON.stringify({ ...failure, chunk })];
    return (await this.call(() => runScript(this.redis, 'copyFailure', [k.copyFailures, k.present, k.refs], args))) === 1;
  }

  /** Up to `limit` failure records (HSCAN order), and how many there are. */
  async failures(limit = 20): Promise<{ total: number; failures: CopyFailure[] }> {
    const k = this.#keys.copyFailures;
    const total = await this.call(() => this.redis.hlen(k));
    const failures: CopyFailure[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.call(() => this.redis.hscan(k, cursor, 'COUNT', Math.max(limit, 10)));
      cursor = next;
      for (let i = 1; i < flat.length && failures.length < limit; i += 2) {
        try {
          failures.push(JSON.parse(flat[i] as string) as CopyFailure);
        } catch {
          // A record someone else wrote: skip it rather than fail the status.
        }
      }
    } while (cursor !== '0' && failures.length < limit);
    return { total, failures };
  }

  async counts(): Promise<ChunkCounts> {
    const k = this.#keys;
    const [referenced, missing, failing] = await this.call(async () => {
      const replies = await this.redis.multi().hlen(k.refs).scard(k.missing).hlen(k.copyFailures).exec();
      return (replies ?? []).map(([err, value]) => {
        if (err) throw err;
        return Number(value);
      });
    });
    return { referenced: referenced ?? 0, missing: missing ?? 0, failing: failing ?? 0 };
  }

  /**
   * Put these chunks in or out of the missing set by what refs and present say now (fenced), and
   * record `info` in the reconcile hash; returns those that are missing.
   */
  async reconcile(ids: readonly string[], token: string, info: Record<string, string | number> = {}): Promise<ChunkId[]> {
    const k = this.#keys;
    const pairs = Object.entries(info).flatMap(([f, v]) => [f, String(v)]);
    const args = [token, pairs.length / 2, ...pairs, ...ids.filter(isChunkId)];
    const keys = [k.refs, k.present, k.missing, k.copyFailures, k.fence, k.reconcile];
    return (await this.call(() => runScript(this.redis, 'reconcile', keys, args))) as ChunkId[];
  }

  /** The missing set, page by page (SSCAN; a member may come twice). */
  async *scanMissing(count = 1000): AsyncGenerator<ChunkId[]> {
    let cursor = '0';
    do {
      const [next, ids] = await this.call(() => this.redis.sscan(this.#keys.missing, cursor, 'COUNT', count));
      cursor = next;
      yield ids as ChunkId[];
    } while (cursor !== '0');
  }

  /** Chunk ids with a failure record, page by page (the reconciler drops those no longer needed). */
  async *scanFailing(count = 1000): AsyncGenerator<ChunkId[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.call(() => this.redis.hscan(this.#keys.copyFailures, cursor, 'COUNT', count));
      cursor = next;
      yield flat.filter((_, i) => i % 2 === 0) as ChunkId[];
    } while (cursor !== '0');
  }

  /** The reconcile hash: when the last pass ran and what it found. */
  /** How many chunks the region lacks and how many have a failed copy on record (two counts). */
  async outstanding(): Promise<{ missing: number; failing: number }> {
    const replies = (await this.call(() => this.redis.multi().scard(this.#keys.missing).hlen(this.#keys.copyFailures).exec())) ?? [];
    return { missing: Number(replies[0]?.[1] ?? 0), failing: Number(replies[1]?.[1] ?? 0) };
  }

  async reconcileInfo(): Promise<Record<string, string>> {
    return this.call(() => this.redis.hgetall(this.#keys.reconcile));
  }
}
