export { isPermanentFailure, toJobError } from './job-errors.js';
export {
  BATCH_CHUNK_MAX,
  COPY_BATCH,
  type CopyBatchJob,
  type CopyJob,
  type FillJob,
  parseCopyBatchJob,
  parseCopyJob,
  parseFillJob,
  WARM_NODE_ID,
  type WarmupJob,
  warmJobNodeToken,
} from './payloads.js';
export {
  COPY_JOB,
  CopyQueue,
  type CopyQueueOptions,
  type CopyRequest,
  type EnqueueResult,
  PRIORITY,
  QUEUES,
  queuePrefix,
} from './queues.js';
export { FILLS_PER_ADD, WarmQueue, type WarmQueueOptions, type WarmupRecord } from './warm.js';
