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
export { concurrencyLimit, forEachLimit, readAhead } from './concurrency.js';
export { type FerryConfig, loadConfig, parseConfig, parseConfigText, type RegionConfig, regionConfig } from './config.js';
export {
  AccessDeniedError,
  ConflictError,
  CorruptError,
  type ErrorCode,
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
  UnauthorizedError,
  UnavailableError,
} from './errors.js';
export { HashPool, type HashPoolOptions, type HashSession, hashPool, sharedBuffer } from './hash-pool.js';
export { sha256Hex, sha256Of, VerifyingStream } from './hashing.js';
export { type LogFn, type Logger, REDACT_PATHS, redactUrl, silentLogger } from './logger.js';
export { baseName, dirPrefix, isValidPath, isWithin, joinPath, MAX_PATH_BYTES, normalizePath, parentPath } from './paths.js';
export { formatBytes, parseSize } from './size.js';
export type { ChunkRef, Entry, NewEntry, Origin } from './types.js';
