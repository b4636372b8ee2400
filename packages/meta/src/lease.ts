import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { runScript } from './scripts.js';

/**
 * A Redis lease: one holder at a time, kept alive by renewals. The holder must stop acting as
 * soon as a renewal fails; another replica can take over once `ttlMs` has passed.
 */
export class Lease {
  readonly owner = randomBytes(12).toString('hex');
  readonly #redis: RedisClient;
  readonly #key: string;
  readonly #ttlMs: number;

  constructor(options: { redis: RedisClient; key: string; ttlMs: number }) {
    this.#redis = options.redis;
    this.#key = options.key;
    this.#ttlMs = options.ttlMs;
  }

  /** Take or renew the lease; true while this owner holds it. */
  async hold(): Promise<boolean> {
    return Number(await runScript(this.#redis, 'lease', [this.#key], ['take', this.owner, this.#ttlMs])) === 1;
  }

  async release(): Promise<void> {
    await runScript(this.#redis, 'lease', [this.#key], ['release', this.owner, this.#ttlMs]);
  }

  /** The current holder's token, if any. */
  holder(): Promise<string | null> {
    return this.#redis.get(this.#key);
  }
}
