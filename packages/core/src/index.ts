export { BufferPool, type PooledBuffer } from './buffer-pool.js';
export { type ByteRange, parseByteRange } from './byte-range.js';
export {
  CHUNK_ID_PATTERN,
  type ChunkId,
  chunkDigest,
  chunkKey,
  chunkSha256,
  type ExternalChunkSource,
  externalChunkId,
  isChunkId,
  isNativeChunkId,
  nativeChunkId,
  parseChunkId,
} from './chunk-id.js';
export { coalesce, concurrencyLimit, forEachLimit, Pause, readAhead } from './concurrency.js';
export {
  type FerryConfig,
  loadConfig,
  MOUNT_LISTEN_DEFAULT,
  type ParseConfigOptions,
  parseConfig,
  parseConfigText,
  type RegionConfig,
  regionConfig,
  schemaDefaults,
  type WarmRule,
} from './config.js';
export { formatDuration, parseDuration } from './duration.js';
export {
  AccessDeniedError,
  BusyError,
  ChunkClaimedError,
  ConflictError,
  CorruptError,
  ERROR_CLASSES,
  type ErrorCode,
  FencedError,
  FerryError,
  type FerryErrorOptions,
  GcRefusedError,
  InvalidArgumentError,
  InvalidConfigError,
  InvalidPathError,
  InvalidStoreUrlError,
  isFerryError,
  isRetryable,
  LocalIoError,
  localIoError,
  messageOf,
  NotDurableError,
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
export { sha256Hex, sha256Of, sha256OfStream, VerifyingStream, type VerifyingStreamOptions } from './hashing.js';
export { errorBody, errorFromResponse, HTTP_STATUS, httpStatusOf, isErrorCode } from './http-status.js';
export { type LogFn, type Logger, REDACT_PATHS, redactUrl, silentLogger } from './logger.js';
export { baseName, dirPrefix, isValidPath, isWithin, joinPath, MAX_PATH_BYTES, normalizePath, parentPath } from './paths.js';
export { seededRandom } from './random.js';
export {
  describeRedisTarget,
  isClusterTarget,
  isSentinelTarget,
  isUrlTarget,
  parseHostPort,
  type RedisClusterTarget,
  type RedisSentinelTarget,
  type RedisTarget,
  type RedisTls,
  type RedisUrlTarget,
  replicaAcks,
  usesTls,
} from './redis-target.js';
export { contentOf, REVISION_NAME, type RevisionFile, revisionId } from './revision.js';
export { formatBytes, parseSize } from './size.js';
export type { ChunkRef, Entry, NewEntry, Origin } from './types.js';
