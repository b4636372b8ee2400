import { importCheckpointKey } from './keys.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';

/**
 * Where one import (origin + target) keeps its checkpoint in the source Redis, next to the
 * volume's keys (same hash tag), and the sets of paths its runs have listed. Neither is volume
 * metadata: they never reach the change log. What the fields mean is the importer's business.
 */
export class ImportCheckpointStore extends RedisPart {
  readonly key: string;

  constructor(options: { redis: RedisClient; volume: string; id: string }) {
    super(options.redis);
    this.key = importCheckpointKey(options.volume, options.id);
  }

  seenKey(run: string): string {
    return `${this.key}:seen:${run}`;
  }

  /** The checkpoint's fields (empty when there is none). */
  load(): Promise<Record<string, string>> {
    return this.call(() => this.redis.hgetall(this.key));
  }

  /** All fields in one HSET, so they always agree; the checkpoint lives `ttlSeconds` after its last save. */
  async save(fields: Record<string, string>, ttlSeconds: number): Promise<void> {
    await this.call(() => this.redis.multi().hset(this.key, fields).expire(this.key, ttlSeconds).exec());
  }

  async addSeen(run: string, paths: readonly string[], ttlSeconds: number): Promise<void> {
    if (paths.length === 0) return;
    const key = this.seenKey(run);
    await this.call(() =>
      this.redis
        .multi()
        .sadd(key, ...paths)
        .expire(key, ttlSeconds)
        .exec(),
    );
  }

  /** The paths of `paths` the run has not listed. */
  async unseen(run: string, paths: readonly string[]): Promise<string[]> {
    if (paths.length === 0) return [];
    const member = await this.call(() => this.redis.smismember(this.seenKey(run), ...paths));
    return paths.filter((_, i) => member[i] !== 1);
  }

  seenCount(run: string): Promise<number> {
    return this.call(() => this.redis.scard(this.seenKey(run)));
  }

  async clearSeen(run: string): Promise<void> {
    await this.call(() => this.redis.unlink(this.seenKey(run)));
  }

  async clear(run: string): Promise<void> {
    await this.call(() => this.redis.unlink(this.key, this.seenKey(run)));
  }
}
