import { ConflictError, parseChunkId } from '@ferry/core';
import type { VolumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';
import { runScript } from './scripts.js';

/** What `hold` did: until when the chunks are held, and which it could not hold (claimed by GC). */
export type HoldResult = { lapsed: true } | { lapsed: false; expiry: number; claimed: string[] };

/** Reference counts of a region's chunks, and the claims garbage collection holds on them. */
export class ChunkRefs extends RedisPart {
  readonly #keys: VolumeKeys;

  constructor(options: { redis: RedisClient; keys: VolumeKeys }) {
    super(options.redis);
    this.#keys = options.keys;
  }

  /** Occurrences of a chunk across all entries (0 when unreferenced). */
  async refCount(chunkId: string): Promise<number> {
    const id = parseChunkId(chunkId);
    return Number((await this.call(() => this.redis.hget(this.#keys.refs, id))) ?? 0);
  }

  /** refCount of many chunks in one round trip, in the same order. */
  async refCounts(chunkIds: readonly string[]): Promise<number[]> {
    if (chunkIds.length === 0) return [];
    const ids = chunkIds.map((id) => parseChunkId(id));
    const counts = await this.call(() => this.redis.hmget(this.#keys.refs, ...ids));
    return counts.map((c) => Number(c ?? 0));
  }

  /**
   * Hold chunks for `ttlMs` so garbage collection claims none of them (protocol: lua/hold.lua): a
   * running put holds each chunk before it looks at the store and renews its holds while it works.
   * A renewal passes the expiry the last call returned (`previous`); when that has passed the
   * holds may have lapsed and nothing is renewed (`lapsed`). Claimed chunks are not held.
   */
  async hold(chunkIds: readonly string[], ttlMs: number, previous?: number): Promise<HoldResult> {
    const k = this.#keys;
    const args = [Math.ceil(ttlMs), previous === undefined ? '' : String(Math.floor(previous)), ...chunkIds];
    const [first, ...claimed] = (await this.call(() => runScript(this.redis, 'hold', [k.gcHolds, k.gcClaims], args))) as string[];
    if (first === 'lapsed') return { lapsed: true };
    return { lapsed: false, expiry: Number(first), claimed };
  }

  /** Of these chunks, those garbage collection has claimed (their objects are being deleted). */
  async claimedChunks(chunkIds: readonly string[]): Promise<string[]> {
    if (chunkIds.length === 0) return [];
    const claims = await this.call(() => this.redis.hmget(this.#keys.gcClaims, ...chunkIds));
    return chunkIds.filter((_, i) => claims[i] !== null);
  }

  /**
   * Wait until garbage collection holds none of these chunks (its deletes are done), so a commit
   * refused with ChunkClaimedError can be tried again; ConflictError after `timeoutMs`.
   */
  async waitUntilUnclaimed(chunkIds: readonly string[], timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.claimedChunks(chunkIds)).length > 0) {
      if (Date.now() > deadline) {
        throw new ConflictError(`garbage collection still holds ${chunkIds.length} chunks this change needs; try again`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
