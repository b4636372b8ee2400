import { serviceRegistry, type TierBytesSource, tierBytesCounter } from '@ferry/runtime';
import { Counter, Gauge, Histogram } from 'prom-client';

/**
 * The gateway's Prometheus metrics in a registry of its own (tests run several gateways in one
 * process; the process metrics only when asked). Bytes per tier are read from the reader when scraped, so the hot path adds nothing.
 */
export function createMetrics(options: {
  volume: string;
  region: string;
  tiers?: TierBytesSource;
  /** The global budget of GetObject streams, read when scraped. */
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
    name: 'ferry_gateway_streams',
    help: 'GetObject bodies being sent now (beyond limits.maxStreams: SlowDown)',
    registers: [registry],
    collect() {
      if (inflight) this.set(inflight.streams);
    },
  });
  new Gauge({
    name: 'ferry_gateway_inflight_bytes',
    help: 'Bytes the streams being sent hold at most (beyond limits.maxBytesInFlight: SlowDown)',
    registers: [registry],
    collect() {
      if (inflight) this.set(inflight.bytes);
    },
  });
  return {
    registry,
    requests: new Counter({
      name: 'ferry_gateway_requests_total',
      help: 'S3 requests by operation and HTTP status',
      labelNames: ['operation', 'status'] as const,
      registers: [registry],
    }),
    seconds: new Histogram({
      name: 'ferry_gateway_request_seconds',
      help: 'Time to the end of the response, by operation',
      labelNames: ['operation'] as const,
      buckets: [0.005, 0.025, 0.1, 0.5, 2, 10, 60, 300],
      registers: [registry],
    }),
    bytesServed: new Counter({
      name: 'ferry_gateway_bytes_served_total',
      help: 'Object bytes written to clients (GetObject bodies)',
      registers: [registry],
    }),
    tierBytes: tierBytesCounter('ferry_gateway_tier_bytes_total', registry, tiers),
  };
}

export type GatewayMetrics = ReturnType<typeof createMetrics>;
