import { parseStreamId } from './ids.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';

/**
 * Where one follower of the source's change log got to (a change-log id), kept in this region's
 * Redis: the warm rules move theirs after the flows of the records before it are queued.
 */
export class LogPosition extends RedisPart {
  readonly #key: string;

  constructor(options: { redis: RedisClient; key: string }) {
    super(options.redis);
    this.#key = options.key;
  }

  async get(): Promise<string | undefined> {
    return (await this.call(() => this.redis.get(this.#key))) ?? undefined;
  }

  async set(id: string): Promise<void> {
    const valid = parseStreamId(id, 'log position');
    await this.call(() => this.redis.set(this.#key, valid));
  }
}
