import { InvalidConfigError, messageOf } from '@ferry/core';
import { Cluster, type Redis } from 'ioredis';
import { describeRedis, type RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';

/** What a region's Redis is, as checked when a process starts. One per server (per master of a Cluster). */
export interface RedisServerReport {
  /** The target, and for a Cluster the master node. */
  where: string;
  version: string;
  maxmemoryPolicy: string;
  aof: boolean;
  /** Whether RDB snapshots are configured; undefined when the server refuses CONFIG GET (managed services). */
  rdb: boolean | undefined;
  /** What is allowed but risky (no persistence), one line each. */
  warnings: string[];
}

/** `INFO` text as a map of its `field:value` lines. */
export function parseRedisInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

const MIN_VERSION = [7, 0] as const;

function olderThanMinimum(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1]);
}

async function rdbConfigured(node: Redis): Promise<boolean | undefined> {
  try {
    const reply = (await node.config('GET', 'save')) as string[];
    return (reply[1] ?? '').trim() !== '';
  } catch {
    return undefined;
  }
}

/**
 * Judge one server from its INFO fields and whether RDB snapshots are configured: throws for what
 * Ferry refuses, returns the report with warnings otherwise.
 */
export function judgeRedisServer(info: Map<string, string>, rdb: boolean | undefined, where: string): RedisServerReport {
  const version = info.get('redis_version') ?? 'unknown';
  // The oldest version Ferry is tested on and documents (docs/operations.md).
  if (version === 'unknown' || olderThanMinimum(version)) {
    throw new InvalidConfigError(`Redis at ${where} is version ${version}: Ferry needs Redis ${MIN_VERSION.join('.')} or newer`);
  }
  const maxmemoryPolicy = info.get('maxmemory_policy') ?? 'unknown';
  if (maxmemoryPolicy !== 'noeviction') {
    // Refused, not warned about: eviction loses data silently, and nothing later would notice.
    throw new InvalidConfigError(
      `Redis at ${where} has maxmemory-policy ${maxmemoryPolicy}: Ferry needs noeviction, because an evicted key is a lost file, cursor or queued copy and nothing would notice (set maxmemory-policy noeviction)`,
    );
  }
  const aof = info.get('aof_enabled') === '1';
  const warnings: string[] = [];
  if (!aof && rdb === false) {
    warnings.push(`Redis at ${where} persists nothing (no AOF, no RDB snapshots): a restart loses this region's metadata and queues`);
  } else if (!aof && rdb === undefined) {
    warnings.push(`Redis at ${where} has AOF off and refuses CONFIG GET, so RDB snapshots cannot be checked: make sure it persists`);
  }
  return { where, version, maxmemoryPolicy, aof, rdb, warnings };
}

async function checkNode(node: Redis, where: string): Promise<RedisServerReport> {
  const info = parseRedisInfo([await node.info('server'), await node.info('memory'), await node.info('persistence')].join('\n'));
  return judgeRedisServer(info, await rdbConfigured(node), where);
}

/**
 * Check the Redis a process is given before it works with it: version 7.0 or newer and
 * `maxmemory-policy noeviction` (else one InvalidConfigError naming the server), and whether it
 * persists anything (a warning in the report). On a Cluster every master is checked.
 */
export async function checkRedisServer(redis: RedisClient): Promise<RedisServerReport[]> {
  const where = describeRedis(redis);
  try {
    if (!(redis instanceof Cluster)) return [await checkNode(redis, where)];
    await redis.ping(); // the node list is known once the cluster is connected
    const masters = redis.nodes('master');
    return await Promise.all(masters.map((node) => checkNode(node, `${where} (node ${node.options.host}:${node.options.port})`)));
  } catch (err) {
    const translated = translateRedisError(err, redis);
    if (translated !== err) throw translated;
    if (err instanceof InvalidConfigError) throw err;
    throw new InvalidConfigError(`cannot check Redis at ${where}: ${messageOf(err)}`, { cause: err });
  }
}
