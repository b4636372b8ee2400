import { type ChunkId, InvalidArgumentError, isNativeChunkId, parseChunkId } from '@ferry/core';
import { parseVolume, volumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';

const SHA256 = /^[0-9a-f]{64}$/;

/** Known hashes kept in process memory: a hash never changes once recorded. */
const DEFAULT_MEMO = 20_000;

/**
 * The sha256 of each external chunk as this region first verified it (`ferry:{v}:exthash`). An
 * external id names a range of an origin object, not its bytes; once a copy read from the origin
 * under its etag guard has recorded its hash, every tier checks copies against it, and a client
 * upload of a chunk with no recorded hash is refused.
 */
export class ChunkHashes extends RedisPart {
  readonly #key: string;
  readonly #memo = new Map<ChunkId, string>();
  readonly #memoSize: number;

  constructor(options: { redis: RedisClient; volume: string; memo?: number }) {
    super(options.redis);
    this.#key = volumeKeys(parseVolume(options.volume)).extHashes;
    this.#memoSize = options.memo ?? DEFAULT_MEMO;
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
    const found = await this.call(() => this.redis.hget(this.#key, chunk));
    return found ? this.#remember(chunk, found) : undefined;
  }

  /** Record the hash of a first verified copy (HSETNX); resolves to the hash that holds. */
  async record(id: ChunkId, sha256: string): Promise<string> {
    const chunk = this.#external(id);
    if (!SHA256.test(sha256)) throw new InvalidArgumentError(`chunk ${chunk}: not a sha256: ${JSON.stringify(sha256.slice(0, 70))}`);
    const held = await this.call(async () =>
      (await this.redis.hsetnx(this.#key, chunk, sha256)) === 1 ? sha256 : await this.redis.hget(this.#key, chunk),
    );
    return this.#remember(chunk, held ?? sha256);
  }
}
