import { serviceRegistry, type TierBytesSource, tierBytesCounter } from '@ferry/runtime';
import { Counter, Gauge, Histogram } from 'prom-client';

/**
 * The hub's Prometheus metrics in a registry of its own (tests run several hubs in one
 * process; the process metrics only when asked). Bytes per tier are read from the reader when scraped, so the hot path adds nothing.
 */
export function createMetrics(options: {
  volume: string;
  region: string;
  tiers?: TierBytesSource;
  /** The global budget of file streams, read when scraped. */
  inflight?: { streams: number; bytes: number };
  processMetrics?: boolean;
}) {
  const registry = serviceRegistry({
    labels: { volume: options.volume, region: options.region },
    defaultMetrics: options.processMetrics ?? false,
  });
  const tiers = options.tiers;
  const inflight = options.inflight;
  new Gauge({
    name: 'ferry_hub_streams',
    help: 'File bodies being sent now (beyond hub.limits.maxStreams: 503)',
    registers: [registry],
    collect() {
      if (inflight) this.set(inflight.streams);
    },
  });
  new Gauge({
    name: 'ferry_hub_inflight_bytes',
    help: 'Bytes the streams being sent hold at most (beyond hub.limits.maxBytesInFlight: 503)',
    registers: [registry],
    collect() {
      if (inflight) this.set(inflight.bytes);
    },
  });
  return {
    registry,
    requests: new Counter({
      name: 'ferry_hub_requests_total',
      help: 'Hub API requests by route and HTTP status',
      labelNames: ['route', 'status'] as const,
      registers: [registry],
    }),
    seconds: new Histogram({
      name: 'ferry_hub_request_seconds',
      help: 'Time to the end of the response, by route',
      labelNames: ['route'] as const,
      buckets: [0.005, 0.025, 0.1, 0.5, 2, 10, 60, 300],
      registers: [registry],
    }),
    bytesServed: new Counter({
      name: 'ferry_hub_bytes_served_total',
      help: 'File bytes written to clients (resolve bodies)',
      registers: [registry],
    }),
    tierBytes: tierBytesCounter('ferry_hub_tier_bytes_total', registry, tiers),
  };
}

export type HubMetrics = ReturnType<typeof createMetrics>;
