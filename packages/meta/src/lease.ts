import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';
import { runScript } from './scripts.js';

/**
 * A Redis lease: one holder at a time, kept alive by renewals, and a fencing token that comes
 * with it (lease.lua). Taking the lease issues a token larger than any before; the mirror's write
 * scripts accept only the current one, so a holder that was paused past its lease, or cut off,
 * has its writes refused (FencedError) instead of writing beside its successor.
 */
export class Lease {
  readonly owner = randomBytes(12).toString('hex');
  readonly #redis: RedisClient;
  readonly #key: string;
  readonly #fence: string;
  readonly #ttlMs: number;

  constructor(options: { redis: RedisClient; key: string; fenceKey: string; ttlMs: number }) {
    this.#redis = options.redis;
    this.#key = options.key;
    this.#fence = options.fenceKey;
    this.#ttlMs = options.ttlMs;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  async #run(op: 'take' | 'release'): Promise<string> {
    try {
      return String(await runScript(this.#redis, 'lease', [this.#key, this.#fence], [op, this.owner, this.#ttlMs]));
    } catch (err) {
      throw translateRedisError(err, this.#redis);
    }
  }

  /** Take or renew the lease: its fencing token while this owner holds it, '' when another does. */
  hold(): Promise<string> {
    return this.#run('take');
  }

  async release(): Promise<void> {
    await this.#run('release');
  }

  /** The current holder's owner id, if any. */
  async holder(): Promise<string | null> {
    const held = await this.#redis.get(this.#key);
    return held === null ? null : (held.split(' ')[0] ?? null);
  }
}
