export {
  type CacheClientOptions,
  CacheNodeClient,
  type FillState,
  type InventoryPage,
  metricValue,
  type NodeRef,
} from './client.js';
export { Heartbeat, type HeartbeatOptions, MembershipView } from './membership.js';
export { type PlacementFn, rendezvousOwners, rendezvousScore, unitHash, type Weighted } from './placement.js';
export {
  type OverCapacity,
  type PlanWarmupOptions,
  plannedBytes,
  planWarmup,
  type WarmPlacement,
  type WarmPlan,
  warmOrder,
} from './plan.js';
export { NodeLoad, readWindow } from './schedule.js';
export { type CacheTierOptions, cacheTier, type RegionCacheTier, type RegionCacheTierOptions, regionCacheTier } from './tier.js';
export {
  type NodeResidency,
  type Residency,
  type ResidencyOptions,
  residency,
  uniqueChunks,
  type WarmChunk,
  type WarmOptions,
  type WarmProgress,
  type WarmResult,
  warmChunks,
} from './warm.js';
export { type WarmNowOptions, type WarmNowReport, warmNow } from './warm-now.js';
