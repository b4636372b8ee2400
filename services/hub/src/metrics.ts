import { readServiceMetrics, type TierBytesSource } from '@ferry/runtime';

/**
 * The hub's Prometheus metrics in a registry of its own (tests run several hubs in one process;
 * the process metrics only when asked): Hub API requests by route, file bodies, bytes per tier.
 */
export function createMetrics(options: {
  volume: string;
  region: string;
  tiers?: TierBytesSource;
  /** The global budget of file streams, read when scraped. */
  inflight?: { streams: number; bytes: number };
  processMetrics?: boolean;
}) {
  return readServiceMetrics({ prefix: 'ferry_hub', label: 'route', requests: 'Hub API requests', ...options });
}

export type HubMetrics = ReturnType<typeof createMetrics>;
