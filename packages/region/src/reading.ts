import { type RegionCacheTier, regionCacheTier } from '@ferry/cache';
import type { MirrorMeta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import type { Region } from './region.js';
import { readCa } from './tls.js';

/**
 * The region's cache nodes as a reader tier, when the region gives readers a cache token;
 * undefined otherwise. Closed with the region. A reader holds the read token only: nothing it
 * holds can change the bytes another reader gets.
 */
export function openCacheTier(region: Region, options: { onRefusedToken?: 'read-around' | 'fail' } = {}): RegionCacheTier | undefined {
  const cache = region.config.cache;
  const token = region.credentials.cache('read');
  if (!cache || !token) return undefined;
  const ca = readCa(cache.tls?.ca, `regions.${region.name}.cache.tls.ca`);
  return region.own(
    regionCacheTier({
      redis: region.redis,
      volume: region.volume,
      token,
      replicas: cache.replicas,
      connectTimeoutMs: cache.connectTimeoutMs,
      ...(ca ? { ca } : {}),
      ...(options.onRefusedToken ? { onRefusedToken: options.onRefusedToken } : {}),
      region: region.name,
      logger: region.logger.child({ component: 'cache' }),
    }),
  );
}

export interface OpenReaderOptions {
  /** Verified chunks kept in process memory (default `reader.memoryBytes`; a one-pass CLI read uses 0). */
  memoryBytes?: number;
  /**
   * Of `memoryBytes`, how much chunks asked for once may hold (default an eighth): a reader whose
   * read-ahead waits in memory until asked for (the mount) needs room for its window there.
   */
  memoryProbationBytes?: number;
  /** The region's cache tier (default: opened from the config when the region has cache nodes). */
  cache?: RegionCacheTier | false;
  /** A cache node that refuses the read token: read around it (default) or fail the read. */
  onRefusedToken?: 'read-around' | 'fail';
}

/**
 * The reader of a region: memory → its cache nodes → its store → the source's store (mirrors) or
 * the origin object of an imported file; in a mirror, chunks that had to come from outside are
 * queued for copying (backfill).
 */
export function openReader(region: Region, options: OpenReaderOptions = {}): RegionReader {
  const cache =
    options.cache === false
      ? undefined
      : (options.cache ?? openCacheTier(region, options.onRefusedToken ? { onRefusedToken: options.onRefusedToken } : {}));
  return new RegionReader({
    meta: region.meta,
    region: region.name,
    store: region.store,
    ...(region.isSource ? {} : { source: { name: region.sourceName, store: region.sourceStore } }),
    ...(cache ? { cache: cache.tier } : {}),
    openOrigin: (url) => region.origins.open(url),
    // Readers check external chunks against the region's hashes; only the daemons record them.
    hashes: { get: (id) => region.hashes.get(id) },
    ...(region.isSource
      ? {}
      : {
          // Through the region's backfill list, which the replicator checks and queues: a
          // reader's Redis user may write that list and nothing else.
          // A request names the chunk and the file it was read for, nothing the copy is made from.
          backfill: (requests) =>
            (region.mirror as MirrorMeta).chunks.requestBackfill(requests.map(({ chunk, path }) => ({ chunk, ...(path ? { path } : {}) }))),
        }),
    memoryBytes: options.memoryBytes ?? region.ferry.reader.memoryBytes,
    ...(options.memoryProbationBytes === undefined ? {} : { memoryProbationBytes: options.memoryProbationBytes }),
    prefetch: region.ferry.reader.prefetch,
    logger: region.logger.child({ component: 'reader' }),
  });
}
