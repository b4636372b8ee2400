import { InvalidArgumentError, isFerryError, messageOf, redactUrl, UnauthorizedError, UnavailableError } from '@ferry/core';
import { Redis } from 'ioredis';

export interface ConnectRedisOptions {
  /** Connect on the first command instead of right away. */
  lazy?: boolean;
  /** Connection name (CLIENT SETNAME), shown by CLIENT LIST. */
  name?: string;
  /**
   * Reconnection attempts a command waits through before it fails. The default, 1, suits the CLI:
   * an unreachable Redis is reported within a second. Daemons that should wait for Redis to come
   * back pass `null`.
   */
  maxRetriesPerRequest?: number | null;
}

// Last connection error of each client we created: a command that gives up only says "max
// retries", the socket error says why.
const lastErrors = new WeakMap<Redis, Error>();
const urls = new WeakMap<Redis, string>();

/**
 * An ioredis client for a `redis://` / `rediss://` URL. Commands issued before the connection is
 * ready wait in the offline queue (that is what makes `lazy` and "use right after creating"
 * work); `maxRetriesPerRequest` bounds that wait, so nothing hangs on a dead Redis. Connection
 * errors are recorded for translateRedisError instead of being printed by ioredis.
 */
export function connectRedis(url: string, options: ConnectRedisOptions = {}): Redis {
  if (typeof url !== 'string' || !/^rediss?:\/\/\S+$/.test(url)) {
    throw new InvalidArgumentError(`invalid Redis URL ${redactUrl(String(url))}: expected redis://host:port/db or rediss://…`);
  }
  const redis = new Redis(url, {
    lazyConnect: options.lazy ?? false,
    connectionName: options.name,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 1 : options.maxRetriesPerRequest,
    enableOfflineQueue: true,
    connectTimeout: 5_000,
    retryStrategy: (times) => Math.min(times * 100, 2_000),
  });
  redis.on('error', (err: Error) => lastErrors.set(redis, err));
  urls.set(redis, url);
  return redis;
}

/** The URL of a client for messages: the one it was created from, or its host, port and db; never a password. */
export function describeRedis(redis: Redis): string {
  const url = urls.get(redis);
  if (url !== undefined) return redactUrl(url);
  const { host, port, db, tls } = redis.options;
  return `${tls ? 'rediss' : 'redis'}://${host ?? 'localhost'}:${port ?? 6379}/${db ?? 0}`;
}

const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
};

function socketReason(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === undefined ? undefined : SOCKET_REASONS[code];
}

function isConnectionFailure(err: unknown): boolean {
  if (socketReason(err) !== undefined) return true;
  const name = (err as Error | undefined)?.name;
  const message = messageOf(err);
  return (
    name === 'MaxRetriesPerRequestError' ||
    message === 'Connection is closed.' ||
    message === 'Command timed out' ||
    message.includes("Stream isn't writeable")
  );
}

const UNAVAILABLE_REPLIES = /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|READONLY)\b/;

/**
 * A Ferry error for a failure of a Redis call: unreachable or not ready → UnavailableError (one
 * line naming the URL without password), refused credentials → UnauthorizedError. Anything else
 * (a bug, a corrupt key) is returned unchanged.
 */
export function translateRedisError(err: unknown, redis: Redis, url?: string): unknown {
  if (isFerryError(err)) return err;
  const where = url === undefined ? describeRedis(redis) : redactUrl(url);
  if (isConnectionFailure(err)) {
    const last = lastErrors.get(redis);
    const reason = socketReason(err) ?? socketReason(last) ?? (last ? messageOf(last) : 'no connection');
    return new UnavailableError(`cannot reach Redis at ${where}: ${reason}`, { cause: last ?? err });
  }
  const message = messageOf(err);
  if (/^(NOAUTH|WRONGPASS)\b/.test(message)) {
    return new UnauthorizedError(`Redis at ${where} refused the credentials: ${message.split('\n')[0]}`, { cause: err });
  }
  if (UNAVAILABLE_REPLIES.test(message)) {
    return new UnavailableError(`Redis at ${where} cannot serve the request: ${message.split('\n')[0]}`, { cause: err });
  }
  return err;
}

/** Check that Redis answers; throws a one-line UnavailableError/UnauthorizedError otherwise. */
export async function pingRedis(redis: Redis, url?: string): Promise<void> {
  try {
    await redis.ping();
  } catch (err) {
    throw translateRedisError(err, redis, url);
  }
}

/**
 * A second connection with the same options, for blocking reads (XREAD BLOCK holds its
 * connection, so it must not share one with other commands). The caller disconnects it.
 */
export function duplicateConnection(redis: Redis, name: string): Redis {
  const dup = redis.duplicate({ connectionName: name, lazyConnect: true });
  dup.on('error', (err: Error) => lastErrors.set(dup, err));
  urls.set(dup, urls.get(redis) ?? describeRedis(redis));
  return dup;
}
