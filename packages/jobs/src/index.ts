export { type CopyJob, parseCopyJob } from './payloads.js';
export { CopyQueue, type CopyQueueOptions, type CopyRequest, PRIORITY, QUEUES, queuePrefix } from './queues.js';
