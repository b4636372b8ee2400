import { type ConnectionOptions, rootCertificates, connect as tlsConnect } from 'node:tls';
import {
  describeRedisTarget,
  InvalidArgumentError,
  isClusterTarget,
  isSentinelTarget,
  parseHostPort,
  type RedisClusterTarget,
  type RedisSentinelTarget,
  type RedisTarget,
  type RedisUrlTarget,
  redactUrl,
  tlsFailure,
  usesTls,
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
  /**
   * The contents of the target's `tls` files. The caller reads them: it knows the config key a
   * file that cannot be read is reported against. TLS itself is on when the target says so.
   */
  tls?: RedisTlsFiles;
}

/** PEM contents of a target's `tls` section. */
export interface RedisTlsFiles {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

// Last connection error of each client we created: a command that gives up only says "max
// retries", the socket error says why.
const lastErrors = new WeakMap<RedisClient, Error>();
// How each client is described in messages (the target without its password).
const descriptions = new WeakMap<RedisClient, string>();

// Why a TLS connection failed is not always in the error ioredis reports: the connections it opens
// to ask the sentinels where the master is, or a cluster node which node serves which slots,
// swallow their errors and report "Connection is closed."; and a server that refuses the client's
// certificate may reset the connection before its alert is read. Clients over TLS keep a handshake
// of their own to try when they fail, and the last TLS failure they saw or found (a certificate
// one side does not trust) is their reason until they connect again.
const handshakes = new WeakMap<RedisClient, () => Promise<Error | undefined>>();
const tlsFailures = new WeakMap<RedisClient, Error>();
const HANDSHAKE_EVERY_MS = 5_000;

const retryStrategy = (times: number) => Math.min(times * 100, 2_000);

function track<T extends RedisClient>(client: T, description: string, handshake?: () => Promise<Error | undefined>): T {
  let lastHandshake = 0;
  const record = (err: Error) => {
    lastErrors.set(client, err);
    if (tlsFailure(err)) tlsFailures.set(client, err);
    else if (handshake && Date.now() - lastHandshake >= HANDSHAKE_EVERY_MS) {
      lastHandshake = Date.now();
      void handshake().then((failed) => {
        if (failed) tlsFailures.set(client, failed);
        else tlsFailures.delete(client);
      });
    }
  };
  client.on('error', record);
  // A Cluster reports its nodes' errors separately; they are the reason when it gives up.
  if (client instanceof Cluster) client.on('node error', record);
  client.on('ready', () => tlsFailures.delete(client));
  if (handshake) handshakes.set(client, handshake);
  descriptions.set(client, description);
  return client;
}

/** The last connection error a client reported, if any (for translateRedisError); a failed TLS handshake first. */
export function lastRedisError(client: RedisClient): Error | undefined {
  return tlsFailures.get(client) ?? lastErrors.get(client);
}

/** How long a completed handshake waits for the server's alert before the server counts as accepting the client. */
const ALERT_WAIT_MS = 1_000;

/**
 * A TLS handshake with each address in turn: the first TLS failure, or undefined once a server
 * accepts it. Nothing is sent: a server that refuses the client's certificate says so just after
 * the client has finished its side (TLS 1.3), and data sent then could reset the connection
 * before the alert is read.
 */
function tlsHandshake(addresses: Array<{ host: string; port: number }>, tls: ConnectionOptions): () => Promise<Error | undefined> {
  const once = (address: { host: string; port: number }) =>
    new Promise<Error | undefined | 'accepted'>((resolve) => {
      const socket = tlsConnect({ ...tls, host: address.host, port: address.port });
      // Only a diagnosis: it never keeps a process that is done from exiting.
      socket.unref();
      let timer: NodeJS.Timeout | undefined;
      const done = (result: Error | undefined | 'accepted') => {
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      socket.setTimeout(5_000, () => done(undefined));
      socket.once('secureConnect', () => {
        timer = setTimeout(() => done('accepted'), ALERT_WAIT_MS).unref();
      });
      socket.once('error', (err) => done(err));
      socket.once('close', () => done(undefined));
    });
  return async () => {
    for (const address of addresses) {
      const result = await once(address);
      if (result === 'accepted') return undefined;
      if (result && tlsFailure(result)) return result;
    }
    return undefined;
  };
}

/** Where a target's servers are for tlsHandshake: the URL's host, the sentinels, or the cluster nodes the config names. */
function addressesOf(target: RedisTarget): Array<{ host: string; port: number }> {
  if (isSentinelTarget(target)) return target.sentinels.map(parseHostPort);
  if (isClusterTarget(target)) return target.cluster.map(parseHostPort);
  try {
    const url = new URL(typeof target === 'string' ? target : target.url);
    return [{ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 6379) }];
  } catch {
    // A URL only ioredis's older parser takes: no handshake of our own, ioredis's error is all there is.
    return [];
  }
}

/**
 * ioredis's `tls` for a target: undefined without TLS; with it, the files' contents (none: the
 * system store). A target that names files nobody read would silently trust the system store
 * instead, so it is refused.
 */
function tlsOptions(target: RedisTarget, options: ConnectRedisOptions): ConnectionOptions | undefined {
  if (!usesTls(target)) return undefined;
  const files = typeof target === 'string' ? undefined : target.tls;
  if (files && Object.keys(files).length > 0 && options.tls === undefined) {
    throw new InvalidArgumentError(`Redis at ${describeRedisTarget(target)}: its tls files were not read (pass their contents as tls)`);
  }
  const { ca, ...rest } = options.tls ?? {};
  // Node's `ca` replaces its built-in roots: the bundle is trusted beside them, as documented.
  return { ...rest, ...(ca ? { ca: [...rootCertificates, ca.toString('utf8')] } : {}) };
}

function commonOptions(options: ConnectRedisOptions): RedisOptions {
  return {
    connectionName: options.name,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 1 : options.maxRetriesPerRequest,
    connectTimeout: 5_000,
    // No CLIENT SETINFO on connect: Redis before 7.2 has no such command, and under a role's user
    // (docs/security.md) each refusal would be an entry in the server's ACL log, hiding real ones.
    disableClientInfo: true,
  };
}

function urlClient(target: string | RedisUrlTarget, options: ConnectRedisOptions, tls: ConnectionOptions | undefined): Redis {
  const url = typeof target === 'string' ? target : target.url;
  if (!/^rediss?:\/\/\S+$/.test(url)) {
    throw new InvalidArgumentError(`invalid Redis URL ${redactUrl(url)}: expected redis://host:port/db or rediss://…`);
  }
  return new Redis(url, {
    ...commonOptions(options),
    ...(typeof target !== 'string' && target.user ? { username: target.user } : {}),
    ...(typeof target !== 'string' && target.password ? { password: target.password } : {}),
    ...(tls ? { tls } : {}),
    lazyConnect: options.lazy ?? false,
    enableOfflineQueue: true,
    retryStrategy,
  });
}

function sentinelClient(target: RedisSentinelTarget, options: ConnectRedisOptions, tls: ConnectionOptions | undefined): Redis {
  return new Redis({
    ...commonOptions(options),
    sentinels: target.sentinels.map(parseHostPort),
    name: target.name,
    db: target.db,
    ...(target.user ? { username: target.user } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
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

function clusterClient(target: RedisClusterTarget, options: ConnectRedisOptions, tls: ConnectionOptions | undefined): Cluster {
  return new Cluster(target.cluster.map(parseHostPort), {
    // The nodes the config names are connected to by those names, not by the addresses they
    // resolve to: a certificate names a host, and a handshake with an address checks the address.
    ...(tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
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
      ...(tls ? { tls } : {}),
    },
  });
}

/**
 * A client for a region's `redis`: a `redis://` / `rediss://` URL (alone or as `{ url }`), a
 * Sentinel-managed master (`{ sentinels, name }`) or a Cluster (`{ cluster }`), over TLS when the
 * target says so (`options.tls` holds its files' contents). Commands issued before the connection is
 * ready wait in the offline queue (that is what makes `lazy` and "use right after creating"
 * work); `maxRetriesPerRequest` bounds that wait for one server and Sentinel, so nothing hangs on
 * a dead Redis (a Cluster keeps them until it is reachable: `Region.ready()` puts a deadline on
 * the first command). Connection errors are recorded for translateRedisError instead of being
 * printed by ioredis.
 */
export function connectRedis(target: string | RedisUrlTarget | RedisSentinelTarget, options?: ConnectRedisOptions): Redis;
export function connectRedis(target: RedisTarget, options?: ConnectRedisOptions): RedisClient;
export function connectRedis(target: RedisTarget, options: ConnectRedisOptions = {}): RedisClient {
  const tls = tlsOptions(target, options);
  const client =
    typeof target === 'string' || 'url' in target
      ? urlClient(target, options, tls)
      : isSentinelTarget(target)
        ? sentinelClient(target, options, tls)
        : isClusterTarget(target)
          ? clusterClient(target, options, tls)
          : undefined;
  if (client) return track(client, describeRedisTarget(target), tls && tlsHandshake(addressesOf(target), tls));
  throw new InvalidArgumentError('invalid Redis target: expected a redis:// URL, { url }, { sentinels, name } or { cluster }');
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
 * A second connection to the same Redis with the same options (password, TLS, Sentinel, Cluster
 * nodes), lazily connected: for blocking reads (XREAD BLOCK holds its connection, so it must not
 * share one with other commands) and for BullMQ workers (`maxRetriesPerRequest: null`). The
 * caller disconnects it.
 */
export function duplicateConnection(redis: RedisClient, name: string, options: { maxRetriesPerRequest?: null } = {}): RedisClient {
  const retries = 'maxRetriesPerRequest' in options ? { maxRetriesPerRequest: null } : {};
  const dup =
    redis instanceof Cluster
      ? // Cluster.duplicate replaces redisOptions wholesale: keep the password, TLS and the rest.
        redis.duplicate(undefined, { lazyConnect: true, redisOptions: { ...redis.options.redisOptions, connectionName: name, ...retries } })
      : redis.duplicate({ connectionName: name, lazyConnect: true, ...retries });
  return track(dup, describeRedis(redis), handshakes.get(redis));
}
