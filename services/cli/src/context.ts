import { existsSync } from 'node:fs';
import { type FerryConfig, InvalidConfigError, type Logger, loadConfig, ReadOnlyRegionError, regionConfig } from '@ferry/core';
import type { Region } from '@ferry/region/handle';

export type { Region };

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
    // A deprecated key is one warning line on stderr, not a failure.
    const config = loadConfig(resolveConfigPath(options.configPath), process.env, { onWarning: (m) => options.logger.warn(m) });
    return new Context({ config, logger: options.logger });
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
    // Loaded here, not at start: `ferry --help` and usage errors need none of it. The handle alone,
    // not the reader and cache tier: `ferry ls` needs neither.
    const { openRegion } = await import('@ferry/region/handle');
    const region = openRegion({ config: this.config, region: name, role: 'client', logger: this.logger, clientName: 'ferry-cli' });
    try {
      await region.ready();
    } catch (err) {
      await region.close();
      throw err;
    }
    return region;
  }

  async close(): Promise<void> {
    const regions = await Promise.allSettled(this.#regions.values());
    for (const r of regions) if (r.status === 'fulfilled') await r.value.close();
    this.#regions.clear();
  }
}
