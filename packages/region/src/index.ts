export { ControlClient, controlApiBase, type WarmupQueued, type WarmupState } from './control-client.js';
export { openCacheTier, openReader, type RegionReaderOptions } from './reading.js';
export { type OpenRegionOptions, openRegion, Region, type RegionRole } from './region.js';
