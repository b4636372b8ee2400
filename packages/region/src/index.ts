export { cacheClient, controlClient } from './cache-access.js';
export { ControlClient, controlApiBase, type WarmupQueued, type WarmupState } from './control-client.js';
export { type ApiRole, type ApiServerTokens, type CacheRole, type CacheServerTokens, Credentials } from './credentials.js';
export { collectGarbage, type GcOptions, type GcReport, type HeldBack } from './gc.js';
export { type OpenReaderOptions, openCacheTier, openReader } from './reading.js';
export { type OpenRegionOptions, openRegion, Region, type RegionRole } from './region.js';
export { type ChunkUse, type RepairOptions, repairChunks } from './repair.js';
export { type BadChunk, type ChunkProblem, chunkUses, digestOf, type VerifyOptions, type VerifyReport, verifyRegion } from './verify.js';
