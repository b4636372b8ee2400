import { type ChunkId, coalesce, InvalidArgumentError, isNativeChunkId, parseChunkId } from '@ferry/core';
import { parseVolume, volumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';

const SHA256 = /^[0-9a-f]{64}$/;

/** Known hashes kept in process memory: a hash never changes once recorded. */
const DEFAULT_MEMO = 20_000;
/** Chunks of one coalesced look-up or record (one round trip). */
const PER_CALL = 500;

/**
 * The sha256 of each external chunk as this region first verified it (`ferry:{v}:exthash`). An
 * external id names a range of an origin object, not its bytes; once a copy read from the origin
 * under its etag guard has recorded its hash, every tier checks copies against it, and a client
 * upload of a chunk with no recorded hash is refused.
 */
export class ChunkHashes extends RedisPart {
  readonly #memo = new Map<ChunkId, string>();
  readonly #memoSize: number;
  /**
   * The look-ups and records made while the last one was in flight go together (HMGET; HSETNX
   * each and one HMGET in a transaction): a copy of many small imported files asked twice per
   * file, 40,000 round trips for 20,000 files.
   */
  readonly #lookup: (id: ChunkId) => Promise<string | null>;
  readonly #record: (item: [id: ChunkId, sha256: string]) => Promise<string | null>;

  constructor(options: { redis: RedisClient; volume: string; memo?: number }) {
    super(options.redis);
    const key = volumeKeys(parseVolume(options.volume)).extHashes;
    this.#memoSize = options.memo ?? DEFAULT_MEMO;
    this.#lookup = coalesce((ids: ChunkId[]) => this.call(() => this.redis.hmget(key, ...ids)), PER_CALL);
    this.#record = coalesce(async (items: Array<[ChunkId, string]>) => {
      const tx = this.redis.multi();
      for (const [id, sha256] of items) tx.hsetnx(key, id, sha256);
      tx.hmget(key, ...items.map(([id]) => id));
      return this.call(async () => {
        const [err, held] = (await tx.exec())?.at(-1) ?? [new Error('the transaction was discarded'), null];
        if (err) throw err;
        return held as Array<string | null>;
      });
    }, PER_CALL);
  }

  #external(id: ChunkId): ChunkId {
    const chunk = parseChunkId(id);
    if (isNativeChunkId(chunk)) throw new InvalidArgumentError(`chunk ${chunk}: native chunks are named by their hash`);
    return chunk;
  }

  #remember(id: ChunkId, sha256: string): string {
    if (this.#memo.size >= this.#memoSize) this.#memo.delete(this.#memo.keys().next().value as ChunkId);
    this.#memo.set(id, sha256);
    return sha256;
  }

  /** The recorded sha256 of an external chunk, or undefined while none is. */
  async get(id: ChunkId): Promise<string | undefined> {
    const chunk = this.#external(id);
    const memo = this.#memo.get(chunk);
    if (memo) return memo;
    const found = await this.#lookup(chunk);
    return found ? this.#remember(chunk, found) : undefined;
  }

  /** Record the hash of a first verified copy (HSETNX); resolves to the hash that holds. */
  async record(id: ChunkId, sha256: string): Promise<string> {
    const chunk = this.#external(id);
    if (!SHA256.test(sha256)) throw new InvalidArgumentError(`chunk ${chunk}: not a sha256: ${JSON.stringify(sha256.slice(0, 70))}`);
    const held = await this.#record([chunk, sha256]);
    return this.#remember(chunk, held ?? sha256);
  }
}
