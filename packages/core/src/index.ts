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
export { concurrencyLimit, forEachLimit } from './concurrency.js';
export { type FerryConfig, loadConfig, parseConfig, parseConfigText, type RegionConfig, regionConfig } from './config.js';
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
  UnauthorizedError,
  UnavailableError,
} from './errors.js';
export { sha256Hex, VerifyingStream } from './hashing.js';
export { type LogFn, type Logger, REDACT_PATHS, redactUrl, silentLogger } from './logger.js';
export { baseName, dirPrefix, isValidPath, isWithin, joinPath, MAX_PATH_BYTES, normalizePath, parentPath } from './paths.js';
export { formatBytes, parseSize } from './size.js';
export type { ChunkRef, Entry, NewEntry, Origin } from './types.js';
