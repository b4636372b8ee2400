export { type ApiOptions, build, listen } from './app.js';
export { askedFor, Backfill, type BackfillOptions, queueBackfill } from './backfill.js';
export { type ChunkPresence, type CopyOutcome, type CopyProcessorOptions, createCopyProcessor } from './copy-worker.js';
export { History, type HistoryPanel, type Sample } from './history.js';
export { LeaderLoop, type LeaderLoopOptions, LeadershipLost } from './leader-loop.js';
export { Maintenance, type MaintenanceOptions, regionLeader } from './maintenance.js';
export { createMetrics, type Metrics } from './metrics.js';
export { type PanelSource, pageRoutes } from './page.js';
export {
  type NodeStatus,
  type NodesPanel,
  nodesPanel,
  type OpenRegion,
  type PathPanel,
  type PathRegion,
  pathPanel,
  type RegionsPanel,
  regionsPanel,
} from './panels.js';
export { CopyRates, type Throughput } from './rates.js';
export { Replicator, type ReplicatorOptions } from './replicator.js';
export {
  type GcStatus,
  gcStatus,
  type LeaseStatus,
  lagOf,
  leaseStatus,
  presence,
  type RegionStatus,
  type RegionStatusOptions,
  regionStatus,
} from './status.js';
export { StatusPage } from './status-page.js';
export { Throttle } from './throttle.js';
export {
  createWarmProcessor,
  WarmFlows,
  type WarmFlowsOptions,
  type WarmProcessorOptions,
  warmupRoutes,
} from './warmup.js';
export { copyRequests, Watcher, type WatcherOptions } from './watcher.js';
