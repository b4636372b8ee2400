import { existsSync } from 'node:fs';
import {
  type FerryConfig,
  InvalidConfigError,
  type Logger,
  loadConfig,
  ReadOnlyRegionError,
  type RegionConfig,
  regionConfig,
} from '@ferry/core';
import { connectRedis, Meta, pingRedis } from '@ferry/meta';
import { createStore, type ObjectStore } from '@ferry/stores';
import type { Redis } from 'ioredis';

export interface Region {
  name: string;
  isSource: boolean;
  config: RegionConfig;
  store: ObjectStore;
  redis: Redis;
  meta: Meta;
}

/** Where the config comes from: `--config`, then FERRY_CONFIG, then ./ferry.yaml. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const path = flag ?? env.FERRY_CONFIG ?? (existsSync('ferry.yaml') ? 'ferry.yaml' : undefined);
  if (!path) {
    throw new InvalidConfigError('no config: pass --config <file>, set FERRY_CONFIG, or create ./ferry.yaml (`ferry demo` needs none)');
  }
  return path;
}

/**
 * What a command works with: the frozen config and the regions it opened. Opening a region
 * checks Redis right away, so an unreachable server is one clear error before any work starts.
 */
export class Context {
  readonly config: FerryConfig;
  readonly logger: Logger;
  readonly #regions = new Map<string, Promise<Region>>();

  constructor(options: { config: FerryConfig; logger: Logger }) {
    this.config = options.config;
    this.logger = options.logger;
  }

  static load(options: { configPath: string | undefined; logger: Logger }): Context {
    return new Context({ config: loadConfig(resolveConfigPath(options.configPath)), logger: options.logger });
  }

  /** A region by name (default: the source). */
  region(name?: string): Promise<Region> {
    const key = name ?? this.config.source;
    let region = this.#regions.get(key);
    if (!region) {
      region = this.#open(key);
      this.#regions.set(key, region);
      region.catch(() => this.#regions.delete(key));
    }
    return region;
  }

  source(): Promise<Region> {
    return this.region(this.config.source);
  }

  /** The region a write goes to: only the source accepts writes. */
  async writable(name?: string): Promise<Region> {
    const target = name ?? this.config.source;
    if (target !== this.config.source) {
      regionConfig(this.config, target);
      throw new ReadOnlyRegionError(`region "${target}" is a read-only mirror; write to the source region "${this.config.source}"`);
    }
    return this.source();
  }

  async #open(name: string): Promise<Region> {
    const config = regionConfig(this.config, name);
    const store = createStore(config.store);
    const redis = connectRedis(config.redis, { name: `ferry-cli-${name}` });
    try {
      await pingRedis(redis, config.redis);
    } catch (err) {
      redis.disconnect();
      throw err;
    }
    const meta = new Meta({
      redis,
      volume: this.config.volume,
      logMaxLen: this.config.log.maxLen,
      logger: this.logger.child({ region: name }),
    });
    return { name, isSource: name === this.config.source, config, store, redis, meta };
  }

  async close(): Promise<void> {
    const regions = await Promise.allSettled(this.#regions.values());
    for (const r of regions) {
      if (r.status !== 'fulfilled') continue;
      r.value.redis.disconnect();
      await r.value.store.close?.();
    }
    this.#regions.clear();
  }
}
