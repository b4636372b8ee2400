export { parseByteRange as parseRange } from '@ferry/core';
export { build, type CacheNodeAppOptions, type CacheNodeLimits, listen } from './app.js';
export { DiskCache, type DiskCacheOptions, type EvictReason, type OpenChunk } from './disk-cache.js';
export { type CacheMetrics, createCacheMetrics } from './metrics.js';
export { CacheNode, type CacheNodeOptions } from './node.js';
export { type Scrub, type ScrubOptions, startScrub } from './scrub.js';
export { type ChunkWant, chunkContext, type EntryLookup, type RegionUpstreamOptions, regionUpstream, type Upstream } from './upstream.js';
