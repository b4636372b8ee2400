import { InvalidConfigError } from '@ferry/core';
import { describeRedis, type RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';

/**
 * The oldest Redis Ferry runs on: 7.0 reports `entries-added` for streams (without it a trimmed
 * log cannot be told from a complete one) and has the script and set commands the Lua scripts
 * use (SMISMEMBER, XINFO in scripts).
 */
export const MIN_REDIS_MAJOR = 7;

/** `redis_version` from the text of INFO server, if any. */
export function redisVersionOf(info: string): string | undefined {
  return /^redis_version:(\S+)/m.exec(info)?.[1];
}

/** InvalidConfigError (one line) unless `version` is 7.0 or newer. */
export function checkRedisVersion(version: string | undefined, where: string): void {
  const major = Number(version?.split('.')[0]);
  if (version === undefined || !Number.isFinite(major)) {
    throw new InvalidConfigError(`Redis at ${where} did not say its version; Ferry needs Redis ${MIN_REDIS_MAJOR}.0 or newer`);
  }
  if (major < MIN_REDIS_MAJOR) {
    throw new InvalidConfigError(
      `Redis at ${where} is version ${version}; Ferry needs Redis ${MIN_REDIS_MAJOR}.0 or newer (stream entries-added, SMISMEMBER)`,
    );
  }
}

/** Ask the server its version and refuse one older than 7.0. */
export async function requireRedisVersion(redis: Pick<RedisClient, 'info'>, where?: string): Promise<string> {
  let info: string;
  try {
    info = await redis.info('server');
  } catch (err) {
    throw translateRedisError(err, redis as RedisClient);
  }
  const version = redisVersionOf(info);
  checkRedisVersion(version, where ?? describeRedis(redis as RedisClient));
  return version as string;
}
