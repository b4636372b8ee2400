export { type CacheRole, cacheClient, cacheToken, hasCacheAccess } from './cache-access.js';
export { ControlClient, controlApiBase, type WarmupQueued, type WarmupState } from './control-client.js';
export { type OpenReaderOptions, openCacheTier, openReader } from './reading.js';
export { type OpenRegionOptions, openRegion, Region, type RegionRole } from './region.js';
