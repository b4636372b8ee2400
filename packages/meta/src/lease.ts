import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';
import { runScript } from './scripts.js';

/** What a status says of a lease: held or not, and when it ends or ended (ms). */
export interface LeaseState {
  held: boolean;
  endsAt?: number;
}

/**
 * A Redis lease: one holder at a time, kept alive by renewals, and a fencing token that comes
 * with it (lease.lua). Taking the lease issues a token larger than any before; the mirror's write
 * scripts accept only the current one, so a holder that was paused past its lease, or cut off,
 * has its writes refused (FencedError) instead of writing beside its successor.
 */
export class Lease extends RedisPart {
  readonly owner = randomBytes(12).toString('hex');
  readonly #key: string;
  readonly #fence: string;
  readonly #end: string;
  readonly #ttlMs: number;

  /** `endKey`: where the lease's end is kept (see lease.lua), so a status can say since when nobody holds it. */
  constructor(options: { redis: RedisClient; key: string; fenceKey: string; endKey: string; ttlMs: number }) {
    super(options.redis);
    this.#key = options.key;
    this.#fence = options.fenceKey;
    this.#end = options.endKey;
    this.#ttlMs = options.ttlMs;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  async #run(op: 'take' | 'release'): Promise<string> {
    return String(
      await this.call(() => runScript(this.redis, 'lease', [this.#key, this.#fence, this.#end], [op, this.owner, this.#ttlMs])),
    );
  }

  /** Take or renew the lease: its fencing token while this owner holds it, '' when another does. */
  hold(): Promise<string> {
    return this.#run('take');
  }

  async release(): Promise<void> {
    await this.#run('release');
  }

  /**
   * Whether someone holds the lease, and when it ends (held: unless renewed) or ended (not held),
   * ms on Redis's clock; no `endsAt` when it was never taken since the end key was kept.
   */
  async state(): Promise<LeaseState> {
    const [held, ends] = await this.call(() => this.redis.mget(this.#key, this.#end));
    const endsAt = Number(ends);
    return { held: held !== null && held !== undefined, ...(ends && Number.isFinite(endsAt) ? { endsAt } : {}) };
  }

  /** The current holder's owner id, if any. */
  async holder(): Promise<string | null> {
    const held = await this.call(() => this.redis.get(this.#key));
    return held === null ? null : (held.split(' ')[0] ?? null);
  }
}
