export { isPermanentFailure, toJobError } from './job-errors.js';
export { type CopyJob, type FillJob, parseCopyJob, parseFillJob, WARM_NODE_ID, type WarmupJob, warmJobNodeToken } from './payloads.js';
export { CopyQueue, type CopyQueueOptions, type CopyRequest, type EnqueueResult, PRIORITY, QUEUES, queuePrefix } from './queues.js';
export { FILLS_PER_ADD, WarmQueue, type WarmQueueOptions, type WarmupRecord } from './warm.js';
