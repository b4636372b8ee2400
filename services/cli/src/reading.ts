import { regionCacheTier } from '@ferry/cache';
import { openRegionReader, type RegionReader } from '@ferry/reader';
import type { Context, Region } from './context.js';

/**
 * A reader for a region as the CLI uses it: cache nodes (when the region has a cache token),
 * its store, then the source; chunks are streamed once, so no memory cache.
 */
export async function readerFor(ctx: Context, region: Region): Promise<{ reader: RegionReader; close(): Promise<void> }> {
  const source = region.isSource ? undefined : await ctx.source();
  const cacheConfig = region.config.cache;
  const cache = cacheConfig?.token
    ? regionCacheTier({
        redis: region.redis,
        volume: ctx.config.volume,
        token: cacheConfig.token,
        replicas: cacheConfig.replicas,
        connectTimeoutMs: cacheConfig.connectTimeoutMs,
        logger: ctx.logger.child({ component: 'cache', region: region.name }),
      })
    : undefined;
  const opened = openRegionReader({
    config: ctx.config,
    region: region.name,
    redis: region.redis,
    store: region.store,
    meta: region.meta,
    ...(source ? { sourceStore: source.store } : {}),
    ...(cache ? { cache: cache.tier } : {}),
    memoryBytes: 0,
    logger: ctx.logger.child({ component: 'reader', region: region.name }),
  });
  return {
    reader: opened.reader,
    async close() {
      await opened.close();
      await cache?.close();
    },
  };
}
