export { type ApiOptions, build, listen } from './app.js';
export { type ChunkPresence, type CopyOutcome, type CopyProcessorOptions, createCopyProcessor } from './copy-worker.js';
export { LeadershipLost, Maintenance, type MaintenanceOptions, RegionLeader } from './maintenance.js';
export { createMetrics, type Metrics } from './metrics.js';
export { Replicator, type ReplicatorOptions } from './replicator.js';
export { type GcStatus, gcStatus, lagOf, presence, type RegionStatus, regionStatus } from './status.js';
export { Throttle } from './throttle.js';
export {
  createWarmProcessor,
  WarmFlows,
  type WarmFlowsOptions,
  type WarmProcessorOptions,
  warmupRoutes,
} from './warmup.js';
export { copyRequests, Watcher, type WatcherOptions } from './watcher.js';
