import { type RegionCacheTier, regionCacheTier } from '@ferry/cache';
import { RegionReader } from '@ferry/reader';
import type { Region } from './region.js';

/**
 * The region's cache nodes as a reader tier, when the region has a cache token; undefined
 * otherwise. Closed with the region.
 */
export function openCacheTier(region: Region): RegionCacheTier | undefined {
  const cache = region.config.cache;
  if (!cache?.token) return undefined;
  return region.own(
    regionCacheTier({
      redis: region.redis,
      volume: region.volume,
      token: cache.token,
      replicas: cache.replicas,
      connectTimeoutMs: cache.connectTimeoutMs,
      logger: region.logger.child({ component: 'cache' }),
    }),
  );
}

export interface OpenReaderOptions {
  /** Verified chunks kept in process memory (default `reader.memoryBytes`; a one-pass CLI read uses 0). */
  memoryBytes?: number;
  /** The region's cache tier (default: opened from the config when the region has cache nodes). */
  cache?: RegionCacheTier | false;
}

/**
 * The reader of a region: memory → its cache nodes → its store → the source's store (mirrors) or
 * the origin object of an imported file; in a mirror, chunks that had to come from outside are
 * queued for copying (backfill).
 */
export function openReader(region: Region, options: OpenReaderOptions = {}): RegionReader {
  const cache = options.cache === false ? undefined : (options.cache ?? openCacheTier(region));
  const copies = region.copies;
  return new RegionReader({
    meta: region.meta,
    region: region.name,
    store: region.store,
    ...(region.isSource ? {} : { source: { name: region.sourceName, store: region.sourceStore } }),
    ...(cache ? { cache: cache.tier } : {}),
    openOrigin: (url) => region.origins.open(url),
    // A full backlog defers the copy to the reconciler, which finds every chunk the region lacks.
    ...(copies ? { backfill: async (requests) => void (await copies.enqueue(requests, { ifRoom: true })) } : {}),
    memoryBytes: options.memoryBytes ?? region.ferry.reader.memoryBytes,
    prefetch: region.ferry.reader.prefetch,
    logger: region.logger.child({ component: 'reader' }),
  });
}
