export { isPermanentFailure, toJobError } from './job-errors.js';
export { type CopyJob, parseCopyJob } from './payloads.js';
export { CopyQueue, type CopyQueueOptions, type CopyRequest, PRIORITY, QUEUES, queuePrefix } from './queues.js';
export {
  type FillJob,
  parseFillJob,
  WARM_JOB_NODE_ID,
  WarmQueue,
  type WarmQueueOptions,
  type WarmupJob,
  type WarmupRecord,
} from './warm.js';
