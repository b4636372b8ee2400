import { readServiceMetrics, type TierBytesSource } from '@ferry/runtime';
import { Counter } from 'prom-client';

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
  const metrics = readServiceMetrics({ prefix: 'ferry_hub', label: 'route', requests: 'Hub API requests', ...options });
  return {
    ...metrics,
    claimsRefused: new Counter({
      name: 'ferry_hub_claims_refused_total',
      help: "Downloads refused because an imported file's bytes did not hash to the sha256 its origin advertised",
      registers: [metrics.registry],
    }),
  };
}

export type HubMetrics = ReturnType<typeof createMetrics>;
