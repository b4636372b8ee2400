import { readServiceMetrics, type TierBytesSource } from '@ferry/runtime';

/**
 * The gateway's Prometheus metrics in a registry of its own (tests run several gateways in one
 * process; the process metrics only when asked): S3 requests by operation, GetObject bodies, bytes per tier.
 */
export function createMetrics(options: {
  volume: string;
  region: string;
  tiers?: TierBytesSource;
  /** The global budget of GetObject streams, read when scraped. */
  inflight?: { streams: number; bytes: number };
  processMetrics?: boolean;
}) {
  return readServiceMetrics({ prefix: 'ferry_gateway', label: 'operation', requests: 'S3 requests', ...options });
}

export type GatewayMetrics = ReturnType<typeof createMetrics>;
