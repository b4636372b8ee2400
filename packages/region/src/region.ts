import { type FerryConfig, type Logger, messageOf, type RegionConfig, regionConfig, replicaAcks, schemaDefaults } from '@ferry/core';
import type { CopyQueue } from '@ferry/jobs';
import {
  ChunkHashes,
  checkKeySlots,
  checkRedisAccess,
  checkRedisServer,
  connectRedis,
  Meta,
  MirrorMeta,
  pingRedis,
  type RedisClient,
  type RedisRole,
  type RedisServerReport,
  translateRedisError,
} from '@ferry/meta';
import { createStore, type ObjectStore, StoresByUrl } from '@ferry/stores';
import { Credentials } from './credentials.js';
import { readRedisTls } from './tls.js';

/**
 * How a process uses its Redis connections:
 * - `client`: a CLI command, or a service answering requests (gateway, cache node): a command on
 *   an unreachable Redis fails within a second with one clear error.
 * - `daemon`: the replicator: commands wait through an outage and go on when Redis is back.
 */
export type RegionRole = 'client' | 'daemon';

export interface OpenRegionOptions {
  config: FerryConfig;
  /** The region's name in `config.regions`. */
  region: string;
  role: RegionRole;
  logger: Logger;
  /** Stores to use instead of those the config names (tests inject fault decorators). Not owned. */
  stores?: { region?: ObjectStore; source?: ObjectStore };
  /** Shown by CLIENT LIST as `<name>-<region>` (default `ferry-<role>`). */
  clientName?: string;
}

/** How long `ready()` waits for a connection (a daemon's, or a Cluster's, would otherwise wait forever). */
const READY_TIMEOUT_MS = 5_000;

/**
 * One region of a volume as a process sees it: its Redis, its store, its metadata (and in a
 * mirror, what it holds and its copy queue), the source's store for fallback reads, the origin
 * stores of imported files, and one `close()`. Everything beyond the region's own Redis is opened
 * on first use: a mirror read that falls back to the source opens the source's store, never the
 * source's Redis; only the watcher and `status` ask for the source's metadata.
 */
export class Region {
  readonly name: string;
  readonly isSource: boolean;
  /** The whole (frozen) config; `config` is this region's part of it. */
  readonly ferry: FerryConfig;
  readonly config: RegionConfig;
  readonly volume: string;
  readonly role: RegionRole;
  readonly logger: Logger;
  readonly redis: RedisClient;
  /** The region's metadata (a mirror's entries are read through the same API). */
  readonly meta: Meta;
  /** What a mirror holds and where its watcher is; undefined in the source region. */
  readonly mirror: MirrorMeta | undefined;
  /** The sha256 of external chunks as this region first verified them. */
  readonly hashes: ChunkHashes;
  /** Which token this process sends for a role, and what the region's servers accept. */
  readonly credentials: Credentials;
  /** Origin stores of imported files, opened on first use. */
  readonly origins: StoresByUrl;
  readonly #injected: OpenRegionOptions['stores'];
  readonly #clientName: string;
  readonly #owned: Array<{ close?: () => Promise<void> | void }> = [];
  /** The region's own store. */
  readonly store: ObjectStore;
  #sourceStore: ObjectStore | undefined;
  #sourceRedis: RedisClient | undefined;
  #sourceMeta: Meta | undefined;
  #copies: Promise<CopyQueue> | undefined;
  #closed = false;
  /** What `ready()` found about the Redis servers it checked (version, policy, persistence warnings). */
  redisReports: readonly RedisServerReport[] = [];

  constructor(options: OpenRegionOptions) {
    const { config, region, role } = options;
    this.config = regionConfig(config, region);
    this.ferry = config;
    this.name = region;
    this.isSource = region === config.source;
    this.volume = config.volume;
    this.role = role;
    this.logger = options.logger.child({ region });
    // Origins of imported files: a Hugging Face repo reads with hub.token (gated repos).
    this.origins = new StoresByUrl(config.hub?.token ? { hfToken: config.hub.token } : {});
    this.#injected = options.stores;
    this.#clientName = options.clientName ?? `ferry-${role}`;
    // A key layout whose scripts span two Cluster slots fails here, on any Redis, not later on a Cluster.
    checkKeySlots(this.volume);
    // Made now (it connects to nothing yet), so a wrong store URL is an error when the region opens.
    this.store = options.stores?.region ?? this.#own(createStore(this.config.store));
    this.redis = this.#connect(region, `${this.#clientName}-${region}`);
    const replicas = replicaAcks(this.config.redis);
    this.meta = new Meta({
      redis: this.redis,
      volume: this.volume,
      logMaxLen: config.log.maxLen,
      logger: this.logger,
      ...(replicas ? { replicas } : {}),
    });
    this.mirror = this.isSource ? undefined : new MirrorMeta({ redis: this.redis, volume: this.volume });
    this.hashes = new ChunkHashes({ redis: this.redis, volume: this.volume });
    this.credentials = new Credentials(region, this.config);
  }

  /** A client of the Redis of `region` (this one or the source), its TLS files read now. */
  #connect(region: string, name: string): RedisClient {
    const target = regionConfig(this.ferry, region).redis;
    const tls = typeof target === 'object' && target.tls ? readRedisTls(target.tls, `regions.${region}.redis.tls`) : undefined;
    return connectRedis(target, { name, ...(tls ? { tls } : {}), ...(this.role === 'daemon' ? { maxRetriesPerRequest: null } : {}) });
  }

  /** How long garbage must stay unreferenced before collection: the region's `gc.grace`, else the schema's default. */
  get gcGraceMs(): number {
    return this.config.gc?.grace ?? (schemaDefaults().regions.r?.gc?.grace as number);
  }

  /** The source region's store (the region's own store in the source). */
  get sourceStore(): ObjectStore {
    if (this.isSource) return this.store;
    this.#sourceStore ??= this.#injected?.source ?? this.#own(createStore(regionConfig(this.ferry, this.ferry.source).store));
    return this.#sourceStore;
  }

  /** The source region's Redis, connected on first use (the region's own Redis in the source). */
  get sourceRedis(): RedisClient {
    if (this.isSource) return this.redis;
    this.#sourceRedis ??= this.#connect(this.ferry.source, `${this.#clientName}-${this.name}-source`);
    return this.#sourceRedis;
  }

  /** The source's metadata and change log (what a mirror replays). */
  get sourceMeta(): Meta {
    if (this.isSource) return this.meta;
    this.#sourceMeta ??= new Meta({
      redis: this.sourceRedis,
      volume: this.volume,
      logMaxLen: this.ferry.log.maxLen,
      logger: this.logger.child({ of: 'source' }),
    });
    return this.#sourceMeta;
  }

  /**
   * The mirror's copy queue (producer side); undefined in the source region. BullMQ is loaded on
   * first use: most commands never queue a copy.
   */
  async copyQueue(): Promise<CopyQueue | undefined> {
    if (this.isSource) return undefined;
    this.#copies ??= import('@ferry/jobs').then(
      ({ CopyQueue }) =>
        new CopyQueue({
          connection: this.redis,
          volume: this.volume,
          attempts: this.config.copy.attempts,
          backlog: this.config.copy.backlog,
          // Connection trouble also fails every command on it, which reports it with context.
          onError: (err) => this.logger.debug({ err }, 'copy queue connection error'),
        }),
    );
    return this.#copies;
  }

  /** The source region's name. */
  get sourceName(): string {
    return this.ferry.source;
  }

  /** Keep something opened for this region, to be closed with it. */
  own<T extends { close?: () => Promise<void> | void }>(resource: T): T {
    this.#owned.push(resource);
    return resource;
  }

  #own(store: ObjectStore): ObjectStore {
    return this.own(store);
  }

  /**
   * Check that the region's Redis answers (and the source's, when `source` is set) and is fit
   * for Ferry (checkRedisServer: version, eviction policy): one clear error now instead of a hang
   * or a silent loss later. Connections that would wait through an outage (a daemon's, a
   * Cluster's) get a deadline. With `warn`, what is allowed but risky (no persistence) is logged
   * as a warning: services pass it, CLI commands do not repeat it on every run.
   */
  async ready(options: { source?: boolean; warn?: boolean; access?: RedisRole } = {}): Promise<RedisServerReport[]> {
    const checks: Array<{ redis: RedisClient; role?: RedisRole }> = [
      { redis: this.redis, ...(options.access ? { role: options.access } : {}) },
    ];
    // The source first: a mirror daemon that cannot reach it has nothing to do. On the source's
    // Redis a mirror's daemon is that mirror's user.
    if (options.source && !this.isSource)
      checks.unshift({ redis: this.sourceRedis, ...(options.access ? { role: 'mirror' as const } : {}) });
    const reports: RedisServerReport[] = [];
    for (const { redis, role } of checks) {
      await this.#withDeadline(redis, () => pingRedis(redis));
      reports.push(...(await this.#withDeadline(redis, () => checkRedisServer(redis))));
      if (role) await this.#withDeadline(redis, () => this.#checkAccess(redis, role));
    }
    this.redisReports = reports;
    if (options.warn || this.role === 'daemon') {
      for (const report of reports) for (const warning of report.warnings) this.logger.warn({ redis: report.where }, warning);
    }
    return reports;
  }

  /**
   * Check this process's Redis user against its role (what it needs: one line when it lacks
   * something) and log whether it may do more. `ready({ access })` does it for the region's Redis
   * (and the source's, as the mirror's user); a process that must print nothing before its start
   * succeeded (the mount) calls it when it has.
   */
  async checkAccess(role: RedisRole): Promise<void> {
    await this.#withDeadline(this.redis, () => this.#checkAccess(this.redis, role));
  }

  async #checkAccess(redis: RedisClient, role: RedisRole): Promise<void> {
    const access = await checkRedisAccess(redis, { volume: this.volume, role, mirror: this.name });
    this.logger.info({ redisUser: access.user, role, broader: access.broader }, access.summary);
  }

  async #withDeadline<T>(redis: RedisClient, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(translateRedisError(new Error('Connection is closed.'), redis)), READY_TIMEOUT_MS);
    });
    try {
      return await Promise.race([fn(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether the region's Redis answers now (health probes): one clear error when it does not. */
  ping(): Promise<void> {
    return pingRedis(this.redis);
  }

  /** A service's health answer: ok while the region's Redis answers, else why not. */
  async health(): Promise<{ ok: boolean; detail?: Record<string, unknown> }> {
    try {
      await this.ping();
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: { redis: messageOf(err) } };
    }
  }

  /** Cut a waiting change-log read short (the watcher's) before the rest is closed. */
  async interruptSourceReads(): Promise<void> {
    await (this.isSource ? this.meta : this.#sourceMeta)?.close();
  }

  /** Release everything this handle opened (not injected stores). Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Closing the source metadata first cuts a waiting change-log read short.
    await this.#sourceMeta?.close().catch(() => {});
    await (await this.#copies)?.close().catch(() => {});
    await Promise.allSettled([...this.#owned.reverse().map(async (r) => r.close?.()), this.origins.close()]);
    await this.meta.close().catch(() => {});
    this.redis.disconnect();
    this.#sourceRedis?.disconnect();
  }
}

/** Open a region of the config (see `Region`); connections are made, not yet checked (`ready()`). */
export function openRegion(options: OpenRegionOptions): Region {
  return new Region(options);
}
