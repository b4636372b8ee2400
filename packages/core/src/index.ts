export { BufferPool, type PooledBuffer } from './buffer-pool.js';
export {
  CHUNK_ID_PATTERN,
  type ChunkId,
  chunkDigest,
  chunkKey,
  type ExternalChunkSource,
  externalChunkId,
  isChunkId,
  isNativeChunkId,
  nativeChunkId,
  parseChunkId,
} from './chunk-id.js';
export { concurrencyLimit, forEachLimit, Pause, readAhead } from './concurrency.js';
export {
  type FerryConfig,
  loadConfig,
  type ParseConfigOptions,
  parseConfig,
  parseConfigText,
  type RegionConfig,
  regionConfig,
  type WarmRule,
} from './config.js';
export { formatDuration, parseDuration } from './duration.js';
export {
  AccessDeniedError,
  ChunkClaimedError,
  ConflictError,
  CorruptError,
  type ErrorCode,
  FencedError,
  FerryError,
  type FerryErrorOptions,
  InvalidArgumentError,
  InvalidConfigError,
  InvalidPathError,
  InvalidStoreUrlError,
  isFerryError,
  isRetryable,
  LocalIoError,
  localIoError,
  messageOf,
  NotFoundError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  ReadOnlyRegionError,
  TransientError,
  tlsFailure,
  UnauthorizedError,
  UnavailableError,
} from './errors.js';
export { HashPool, type HashPoolOptions, type HashSession, hashPool, sharedBuffer } from './hash-pool.js';
export { sha256Hex, sha256Of, VerifyingStream, type VerifyingStreamOptions } from './hashing.js';
export { type LogFn, type Logger, REDACT_PATHS, redactUrl, silentLogger } from './logger.js';
export { baseName, dirPrefix, isValidPath, isWithin, joinPath, MAX_PATH_BYTES, normalizePath, parentPath } from './paths.js';
export {
  describeRedisTarget,
  isClusterTarget,
  isSentinelTarget,
  parseHostPort,
  type RedisClusterTarget,
  type RedisSentinelTarget,
  type RedisTarget,
} from './redis-target.js';
export { formatBytes, parseSize } from './size.js';
export type { ChunkRef, Entry, NewEntry, Origin } from './types.js';
