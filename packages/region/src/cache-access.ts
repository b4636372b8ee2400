import { CacheNodeClient } from '@ferry/cache';
import type { RegionConfig } from '@ferry/core';
import { ControlClient } from './control-client.js';
import { type CacheRole, Credentials } from './credentials.js';
import type { Region } from './region.js';
import { readCa } from './tls.js';

/**
 * A client of the region's cache nodes with the credential of `role` (and the region's TLS
 * trust), or one config error naming the key to set. Closed with the region.
 */
export function cacheClient(region: Region, role: CacheRole): CacheNodeClient {
  const token = region.credentials.requireCache(role);
  const cache = region.config.cache as NonNullable<Region['config']['cache']>;
  const ca = readCa(cache.tls?.ca, `regions.${region.name}.cache.tls.ca`);
  return region.own(
    new CacheNodeClient({
      token,
      connectTimeoutMs: cache.connectTimeoutMs,
      ...(ca ? { ca } : {}),
      region: region.name,
      logger: region.logger.child({ component: 'cache-client' }),
    }),
  );
}

/**
 * A client of a region's control API with the tokens this process holds; undefined when it may not
 * queue work there (no api section, no admin token and not open). Needs no Redis: the CLI asks the
 * replicator before it opens the region.
 */
export function controlClient(name: string, config: RegionConfig): ControlClient | undefined {
  const credentials = new Credentials(name, config);
  if (!config.api || !credentials.canUseApi('admin')) return undefined;
  const read = credentials.api('read');
  const admin = credentials.api('admin');
  return new ControlClient({ api: config.api, region: name, tokens: { ...(read ? { read } : {}), ...(admin ? { admin } : {}) } });
}
