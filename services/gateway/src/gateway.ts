import { regionCacheTier } from '@ferry/cache';
import { type FerryConfig, InvalidConfigError, type Logger, messageOf, regionConfig } from '@ferry/core';
import { connectRedis, Meta, pingRedis } from '@ferry/meta';
import { openRegionReader, type RegionReader, type Tier } from '@ferry/reader';
import { closeGracefully } from '@ferry/runtime';
import { createStore, type ObjectStore } from '@ferry/stores';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { build, listen } from './app.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';

export interface GatewayServiceOptions {
  config: FerryConfig;
  /** The region whose Redis and store the gateway reads (a mirror falls back to the source). */
  region: string;
  logger: Logger;
  /** Address to listen on (default: config.gateway.listen); false to build without listening. */
  listen?: string | false;
  /** Bearer token for /-/metrics (the CLI reads it from FERRY_GATEWAY_METRICS_TOKEN). */
  metricsToken?: string;
  /** Stores to use instead of those the config names (tests). */
  stores?: { region?: ObjectStore; source?: ObjectStore };
  /** How long `stop()` lets running downloads finish before cutting them (default 10 s). */
  graceMs?: number;
  /** Export the process metrics (CPU, memory, event loop) too: on for the gateway process, off in tests. */
  processMetrics?: boolean;
}

/**
 * The gateway process of one region: its Redis and store, a RegionReader over them (source and
 * origin fallback, backfill copies in a mirror) and the S3 app. `start()` / `stop()`.
 */
export class Gateway {
  readonly region: string;
  readonly reader: RegionReader;
  readonly metrics: GatewayMetrics;
  readonly app: FastifyInstance;
  address: string | undefined;
  readonly #o: GatewayServiceOptions;
  readonly #redis: Redis;
  readonly #stores: ObjectStore[] = [];
  readonly #reading: { reader: RegionReader; close(): Promise<void> };
  readonly #cache: { tier: Tier; close(): Promise<void> } | undefined;

  constructor(options: GatewayServiceOptions) {
    const { config, region } = options;
    const own = regionConfig(config, region);
    const gateway = config.gateway;
    if (!gateway) throw new InvalidConfigError('the config has no gateway section (listen, accessKeys or anonymous, region)');
    // Checked before anything is opened, so a refused config leaves no connection behind.
    if (!gateway.anonymous && gateway.accessKeys.length === 0) {
      throw new InvalidConfigError('gateway: configure gateway.accessKeys, or set gateway.anonymous: true to serve unsigned requests');
    }
    this.#o = options;
    this.region = region;
    const log = options.logger.child({ component: 'gateway', region, volume: config.volume });
    const isSource = region === config.source;
    // Fail fast (one retry): a request waiting on a dead Redis is better answered with a 503 now.
    this.#redis = connectRedis(own.redis, { name: `ferry-gateway-${region}` });
    const store = options.stores?.region ?? this.#own(createStore(own.store));
    const source = isSource ? undefined : (options.stores?.source ?? this.#own(createStore(regionConfig(config, config.source).store)));
    const meta = new Meta({ redis: this.#redis, volume: config.volume, logMaxLen: config.log.maxLen, logger: log });
    const cacheConfig = own.cache;
    this.#cache = cacheConfig?.token
      ? regionCacheTier({
          redis: this.#redis,
          volume: config.volume,
          token: cacheConfig.token,
          replicas: cacheConfig.replicas,
          connectTimeoutMs: cacheConfig.connectTimeoutMs,
          logger: log.child({ component: 'cache' }),
        })
      : undefined;
    // Unlike a CLI read, a gateway serves many readers of the same files: it keeps hot chunks
    // (config.reader.memoryBytes).
    this.#reading = openRegionReader({
      config,
      region,
      redis: this.#redis,
      store,
      meta,
      ...(source ? { sourceStore: source } : {}),
      ...(this.#cache ? { cache: this.#cache.tier } : {}),
      logger: log.child({ component: 'reader' }),
    });
    this.reader = this.#reading.reader;
    this.metrics = createMetrics({
      volume: config.volume,
      region,
      tiers: this.reader.chunks,
      processMetrics: options.processMetrics ?? false,
    });
    this.app = build({
      volume: config.volume,
      region: gateway.region,
      reader: this.reader,
      accessKeys: gateway.accessKeys,
      anonymous: gateway.anonymous,
      ...(options.metricsToken ? { metricsToken: options.metricsToken } : {}),
      metrics: this.metrics,
      logger: log,
      health: async () => {
        try {
          await this.#redis.ping();
          return { ok: true };
        } catch (err) {
          return { ok: false, detail: { redis: messageOf(err) } };
        }
      },
    });
  }

  #own(store: ObjectStore): ObjectStore {
    this.#stores.push(store);
    return store;
  }

  async start(): Promise<void> {
    const own = regionConfig(this.#o.config, this.region);
    await pingRedis(this.#redis, own.redis);
    const address = this.#o.listen ?? this.#o.config.gateway?.listen;
    if (address) this.address = (await listen(this.app, address)).url;
  }

  /** Stop accepting requests, let running responses end, then release connections and stores. */
  async stop(): Promise<void> {
    // A 100 GB download would hold close() for minutes: after the grace period, cut it.
    await closeGracefully(this.app, { graceMs: this.#o.graceMs ?? 10_000 });
    await this.#reading.close();
    await this.#cache?.close();
    await this.reader.meta.close();
    this.#redis.disconnect();
    await Promise.allSettled(this.#stores.map((s) => s.close?.()));
  }
}
