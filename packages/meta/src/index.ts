export { formatRedisAcl, type RedisAclFormat, type RedisAclUser, type RedisRole, redisAclUsers } from './acl.js';
export { checkRedisAccess, type RedisAccessReport } from './acl-check.js';
export { ChangeLog, type ReadChangesOptions } from './change-log.js';
export { ChunkHashes } from './chunk-hashes.js';
export { type ChunkCounts, type CopyFailure, MirrorChunks } from './chunks.js';
export {
  chunkIdList,
  decodeStoredEntry,
  encodeLogEntry,
  encodeStoredEntry,
  entryRest,
  filePath,
  validateNewEntry,
  volumePath,
} from './entry.js';
export { type DeleteResult, FOLDER_BATCH, type RenameResult } from './folders.js';
export { type ClaimBatch, type ClaimOptions, type GcCaller, GcMeta, gcRefusalText } from './gc.js';
export { compareIds, idTime, isStreamId, NO_VERSION, parseStreamId, STREAM_ID_PATTERN } from './ids.js';
export { ImportCheckpointStore } from './import-checkpoint.js';
export { JobBatches, JobProbe } from './job-probe.js';
export {
  ackKey,
  checkKeySlots,
  copyBatchesKey,
  importCheckpointKey,
  parseRegion,
  parseVolume,
  queuePrefix,
  REGION_PATTERN,
  VOLUME_PATTERN,
  type VolumeKeys,
  verifySeenKey,
  volumeKeys,
} from './keys.js';
export { Lease, type LeaseState } from './lease.js';
export { DEFAULT_LIST_LIMIT, type ListItem, type ListOptions, type ListPage, MAX_LIST_LIMIT } from './list.js';
export { historyChange, type LogBounds, type MirrorPosition, needsResync, type SourceHistory } from './log.js';
export { LogPosition } from './log-position.js';
export {
  type CacheMember,
  Membership,
  type MembershipOptions,
  NODE_ID_PATTERN,
  type NodeInfo,
  parseNodeId,
  parseNodeInfo,
} from './members.js';
export {
  type CommitResult,
  DEFAULT_LOG_MAX_LEN,
  GC_DELETED_KEEP_MS,
  Meta,
  type MetaOptions,
  RESERVED,
  type ScanPage,
} from './meta.js';
export { type ApplyResult, type FenceToken, MirrorMeta, type Tracking } from './mirror.js';
export { type ChangeOp, type ChangeRecord, parseChangeRecord, type RawStreamRecord } from './record.js';
export { type ConnectRedisOptions, connectRedis, describeRedis, duplicateConnection, lastRedisError, type RedisClient } from './redis.js';
export { pingRedis, translateRedisError } from './redis-errors.js';
export { RedisPart } from './redis-part.js';
export { checkRedisServer, judgeRedisServer, parseRedisInfo, type RedisServerReport } from './redis-server.js';
export { checkRedisVersion, MIN_REDIS_MAJOR, redisVersionOf, requireRedisVersion } from './redis-version.js';
export { ChunkRefs, type HoldResult } from './refs.js';
export { type Resync, ResyncIncompleteError, type ResyncStart, type ResyncState } from './resync.js';
export { ALIASES_ROOT, REVISIONS_ROOT, type RetainOptions, type RevisionInfo, Revisions, reposUnder, splitRevision } from './revisions.js';
export { type ScriptName, scriptSource } from './scripts.js';
export { assertOneSlot, keySlot } from './slots.js';
