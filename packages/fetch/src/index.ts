export { ChunkReader, type ChunkReaderOptions, type TierStats } from './chunk-reader.js';
export { MemoryCache } from './memory-cache.js';
export { type ChunkContext, type OriginRead, openOriginRead, originRead } from './origin.js';
export { BoundedBody, chunkBuffer, readBounded, recycle } from './read-bounded.js';
export { originTier, storeTier, type Tier } from './tier.js';
export { chunkVerifier, establishHash, hashedChunkVerifier, type KnownHashes, verifyChunk, verifyHashedChunk } from './verify.js';
