import { existsSync } from 'node:fs';
import { type FerryConfig, InvalidConfigError, type Logger, loadConfig, messageOf, ReadOnlyRegionError, regionConfig } from '@ferry/core';
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

  /** The config file it was loaded from (none for a config made in code). */
  readonly configPath: string | undefined;

  constructor(options: { config: FerryConfig; logger: Logger; configPath?: string }) {
    this.config = options.config;
    this.logger = options.logger;
    this.configPath = options.configPath;
  }

  static load(options: { configPath: string | undefined; logger: Logger }): Context {
    const path = resolveConfigPath(options.configPath);
    // A deprecated key is one warning line on stderr, not a failure.
    const config = loadConfig(path, process.env, { onWarning: (m) => options.logger.warn(m) });
    return new Context({ config, logger: options.logger, configPath: path });
  }

  /**
   * On every SIGHUP, load the config file again (its `${file:…}` secrets and environment
   * references too) and hand it to `apply`; a file that no longer loads is logged and changes
   * nothing. Returns the function that stops listening.
   */
  onReload(log: Logger, what: string, apply: (config: FerryConfig) => void): () => void {
    const path = this.configPath;
    const reload = () => {
      if (path === undefined) return;
      try {
        apply(loadConfig(path, process.env));
        log.info({ config: path }, `${what} reloaded`);
      } catch (err) {
        log.error({ err, config: path, reason: messageOf(err) }, `${what} not reloaded; keeping those in use`);
      }
    };
    process.on('SIGHUP', reload);
    return () => process.off('SIGHUP', reload);
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
