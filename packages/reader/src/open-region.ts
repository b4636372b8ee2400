import type { FerryConfig, Logger } from '@ferry/core';
import type { Tier } from '@ferry/fetch';
import { CopyQueue } from '@ferry/jobs';
import { Meta } from '@ferry/meta';
import { type ObjectStore, StoresByUrl } from '@ferry/stores';
import type { Redis } from 'ioredis';
import { RegionReader } from './region-reader.js';

export interface OpenRegionReaderOptions {
  config: FerryConfig;
  region: string;
  /** The region's Redis (metadata, and the copy queue for backfill in a mirror). */
  redis: Redis;
  /** The region's store. */
  store: ObjectStore;
  /** The source region's store (mirrors only). */
  sourceStore?: ObjectStore;
  /** The region's cache-node tier, when it has cache nodes. */
  cache?: Tier;
  meta?: Meta;
  /** Defaults to `config.reader.memoryBytes`. */
  memoryBytes?: number;
  logger: Logger;
}

/**
 * The reader every service uses for a region: its cache nodes and store, the source on a miss
 * (with backfill copies queued in a mirror), and origin stores of imported files opened on first
 * use. `close()` releases what this opened (not the injected Redis or stores).
 */
export function openRegionReader(o: OpenRegionReaderOptions): { reader: RegionReader; close(): Promise<void> } {
  const isSource = o.region === o.config.source;
  const origins = new StoresByUrl();
  const copies = isSource ? undefined : new CopyQueue({ connection: o.redis, volume: o.config.volume });
  const reader = new RegionReader({
    meta: o.meta ?? new Meta({ redis: o.redis, volume: o.config.volume, logMaxLen: o.config.log.maxLen, logger: o.logger }),
    region: o.region,
    store: o.store,
    ...(o.sourceStore && !isSource ? { source: { name: o.config.source, store: o.sourceStore } } : {}),
    ...(o.cache ? { cache: o.cache } : {}),
    openOrigin: (url) => origins.open(url),
    ...(copies ? { backfill: (requests) => copies.enqueue(requests) } : {}),
    memoryBytes: o.memoryBytes ?? o.config.reader.memoryBytes,
    prefetch: o.config.reader.prefetch,
    logger: o.logger,
  });
  return {
    reader,
    async close() {
      await copies?.close();
      await origins.close();
    },
  };
}
