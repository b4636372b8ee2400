import {
  describeRedisTarget,
  InvalidArgumentError,
  isClusterTarget,
  isSentinelTarget,
  parseHostPort,
  type RedisClusterTarget,
  type RedisSentinelTarget,
  type RedisTarget,
  redactUrl,
} from '@ferry/core';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A client of a region's Redis: one server or a Sentinel-managed master (`Redis`), or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

export interface ConnectRedisOptions {
  /** Connect on the first command instead of right away. */
  lazy?: boolean;
  /** Connection name (CLIENT SETNAME), shown by CLIENT LIST. */
  name?: string;
  /**
   * Reconnection attempts a command waits through before it fails. The default, 1, suits the CLI:
   * an unreachable Redis is reported within a second. Daemons that should wait for Redis to come
   * back pass `null` (BullMQ workers need `null`).
   */
  maxRetriesPerRequest?: number | null;
}

// Last connection error of each client we created: a command that gives up only says "max
// retries", the socket error says why.
const lastErrors = new WeakMap<RedisClient, Error>();
// How each client is described in messages (the target without its password).
const descriptions = new WeakMap<RedisClient, string>();

const retryStrategy = (times: number) => Math.min(times * 100, 2_000);

function track<T extends RedisClient>(client: T, description: string): T {
  const record = (err: Error) => lastErrors.set(client, err);
  client.on('error', record);
  // A Cluster reports its nodes' errors separately; they are the reason when it gives up.
  if (client instanceof Cluster) client.on('node error', record);
  descriptions.set(client, description);
  return client;
}

/** The last connection error a client reported, if any (for translateRedisError). */
export function lastRedisError(client: RedisClient): Error | undefined {
  return lastErrors.get(client);
}

function commonOptions(options: ConnectRedisOptions): RedisOptions {
  return {
    connectionName: options.name,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 1 : options.maxRetriesPerRequest,
    connectTimeout: 5_000,
  };
}

function sentinelClient(target: RedisSentinelTarget, options: ConnectRedisOptions): Redis {
  return new Redis({
    ...commonOptions(options),
    sentinels: target.sentinels.map(parseHostPort),
    name: target.name,
    db: target.db,
    ...(target.user ? { username: target.user } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    lazyConnect: options.lazy ?? false,
    enableOfflineQueue: true,
    retryStrategy,
    // Keep asking the sentinels: a failover takes seconds, and a daemon must find the new master.
    sentinelRetryStrategy: retryStrategy,
    // No failoverDetector: its +switch-master handler closes the connector, and when that lands
    // while the client is already reconnecting (the master died first) the connect attempt
    // fails with "Connection is closed." and ioredis ends the client for good. A dead master
    // closes the socket and the retry asks the sentinels again; a master demoted without dying
    // answers writes with READONLY, which reconnects (to the new master) and resends.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
  });
}

function clusterClient(target: RedisClusterTarget, options: ConnectRedisOptions): Cluster {
  return new Cluster(target.cluster.map(parseHostPort), {
    lazyConnect: options.lazy ?? false,
    enableOfflineQueue: true,
    clusterRetryStrategy: retryStrategy,
    // During a failover or resharding, MOVED/ASK/CLUSTERDOWN are retried after these pauses.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    slotsRefreshTimeout: 2_000,
    scaleReads: 'master',
    redisOptions: {
      ...commonOptions(options),
      ...(target.user ? { username: target.user } : {}),
      ...(target.password ? { password: target.password } : {}),
    },
  });
}

/**
 * A client for a region's `redis`: a `redis://` / `rediss://` URL, a Sentinel-managed master
 * (`{ sentinels, name }`) or a Cluster (`{ cluster }`). Commands issued before the connection is
 * ready wait in the offline queue (that is what makes `lazy` and "use right after creating"
 * work); `maxRetriesPerRequest` bounds that wait for one server and Sentinel, so nothing hangs on
 * a dead Redis (a Cluster keeps them until it is reachable: `Region.ready()` puts a deadline on
 * the first command). Connection errors are recorded for translateRedisError instead of being
 * printed by ioredis.
 */
export function connectRedis(target: string | RedisSentinelTarget, options?: ConnectRedisOptions): Redis;
export function connectRedis(target: RedisTarget, options?: ConnectRedisOptions): RedisClient;
export function connectRedis(target: RedisTarget, options: ConnectRedisOptions = {}): RedisClient {
  if (typeof target === 'string') {
    if (!/^rediss?:\/\/\S+$/.test(target)) {
      throw new InvalidArgumentError(`invalid Redis URL ${redactUrl(target)}: expected redis://host:port/db or rediss://…`);
    }
    const redis = new Redis(target, {
      ...commonOptions(options),
      lazyConnect: options.lazy ?? false,
      enableOfflineQueue: true,
      retryStrategy,
    });
    return track(redis, redactUrl(target));
  }
  if (isSentinelTarget(target)) return track(sentinelClient(target, options), describeRedisTarget(target));
  if (isClusterTarget(target)) return track(clusterClient(target, options), describeRedisTarget(target));
  throw new InvalidArgumentError('invalid Redis target: expected a redis:// URL, { sentinels, name } or { cluster }');
}

/** The target of a client for messages: the one it was created from, or its host, port and db; never a password. */
export function describeRedis(redis: RedisClient): string {
  const known = descriptions.get(redis);
  if (known !== undefined) return known;
  if (redis instanceof Cluster) return 'a Redis Cluster';
  const { host, port, db, tls } = redis.options;
  return `${tls ? 'rediss' : 'redis'}://${host ?? 'localhost'}:${port ?? 6379}/${db ?? 0}`;
}

/**
 * A second connection to the same Redis with the same options (password, Sentinel, Cluster
 * nodes), lazily connected: for blocking reads (XREAD BLOCK holds its connection, so it must not
 * share one with other commands) and for BullMQ workers (`maxRetriesPerRequest: null`). The
 * caller disconnects it.
 */
export function duplicateConnection(redis: RedisClient, name: string, options: { maxRetriesPerRequest?: null } = {}): RedisClient {
  const retries = 'maxRetriesPerRequest' in options ? { maxRetriesPerRequest: null } : {};
  const dup =
    redis instanceof Cluster
      ? // Cluster.duplicate replaces redisOptions wholesale: keep the password and the rest.
        redis.duplicate(undefined, { lazyConnect: true, redisOptions: { ...redis.options.redisOptions, connectionName: name, ...retries } })
      : redis.duplicate({ connectionName: name, lazyConnect: true, ...retries });
  return track(dup, describeRedis(redis));
}
