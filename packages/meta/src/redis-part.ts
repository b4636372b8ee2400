import type { RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';

/**
 * What every Redis-backed part of the metadata shares: its client, and the one translation of a
 * failed call into a Ferry error (unreachable → UnavailableError naming the Redis, refused
 * credentials → UnauthorizedError). Only packages/meta talks to Redis; everything above uses these
 * parts.
 */
export abstract class RedisPart {
  protected readonly redis: RedisClient;

  constructor(redis: RedisClient) {
    this.redis = redis;
  }

  /** Run Redis calls (on `on`, default the part's client); a failure is thrown as its Ferry error. */
  protected async call<T>(fn: () => Promise<T>, on: RedisClient = this.redis): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateRedisError(err, on);
    }
  }
}
