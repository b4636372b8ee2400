import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface ServiceRegistryOptions {
  /** Labels every metric of the registry carries (volume, region). */
  labels?: Record<string, string>;
  /**
   * Also export the process metrics (CPU, memory, event loop lag, GC). Off by default: tests
   * run several services in one process, and one process has one set of these.
   */
  defaultMetrics?: boolean;
}

/**
 * How often the event-loop delay histogram samples (prom-client's default is 10 ms). Each sample
 * wakes the process: at 10 ms that was about 200 wake-ups a second and 0.9 % of a core on an
 * otherwise idle daemon, most of an idle replicator's cost. A stall still shows: the pending
 * sample fires late by whatever blocked the loop; only stalls shorter than this can fall between
 * two samples.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * A service's Prometheus registry: one per service instance, never prom-client's global one, so
 * several services in one process (tests, `ferry demo`) do not mix their counts.
 */
export function serviceRegistry(options: ServiceRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.labels) registry.setDefaultLabels(options.labels);
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return registry;
}

/** Where a reader's per-tier byte counts come from (RegionReader.chunks.stats). */
export interface TierBytesSource {
  stats: { bytes: Record<string, number> };
}

/** `<name>{tier}`: the chunk bytes a service's reader got from each tier, read when scraped. */
export function tierBytesCounter(name: string, registry: Registry, tiers: TierBytesSource | undefined): Counter<'tier'> {
  return new Counter({
    name,
    help: 'Chunk bytes the reader got from each tier (memory, cache, store, source, origin)',
    labelNames: ['tier'] as const,
    registers: [registry],
    collect() {
      if (!tiers) return;
      this.reset();
      for (const [tier, bytes] of Object.entries(tiers.stats.bytes)) this.inc({ tier }, bytes);
    },
  });
}

export interface ReadServiceMetricsOptions<L extends string> {
  /** Metric name prefix: `ferry_gateway`, `ferry_hub`. */
  prefix: string;
  /** The label requests are counted by (`operation`, `route`). */
  label: L;
  /** What a request is, for the help texts ("S3 requests", "Hub API requests"). */
  requests: string;
  volume: string;
  region: string;
  tiers?: TierBytesSource;
  /** The global budget of body streams, read when scraped. */
  inflight?: { streams: number; bytes: number };
  processMetrics?: boolean;
}

/**
 * The metrics of a read-only data service over a region (the gateway, the hub), in a registry of
 * its own: requests and their time by `label` and status, bodies being sent and the bytes they
 * hold, bytes served, and the reader's bytes per tier (read when scraped, so the hot path adds nothing).
 */
export function readServiceMetrics<L extends string>(options: ReadServiceMetricsOptions<L>) {
  const { prefix, label, inflight } = options;
  const registry = serviceRegistry({
    labels: { volume: options.volume, region: options.region },
    defaultMetrics: options.processMetrics ?? false,
  });
  new Gauge({
    name: `${prefix}_streams`,
    help: 'Bodies being sent now (beyond limits.maxStreams: 503, retried by clients)',
    registers: [registry],
    collect() {
      if (inflight) this.set(inflight.streams);
    },
  });
  new Gauge({
    name: `${prefix}_inflight_bytes`,
    help: 'Bytes the bodies being sent hold at most (beyond limits.maxBytesInFlight: 503)',
    registers: [registry],
    collect() {
      if (inflight) this.set(inflight.bytes);
    },
  });
  return {
    registry,
    requests: new Counter<L | 'status'>({
      name: `${prefix}_requests_total`,
      help: `${options.requests} by ${label} and HTTP status`,
      labelNames: [label, 'status'],
      registers: [registry],
    }),
    seconds: new Histogram<L>({
      name: `${prefix}_request_seconds`,
      help: `Time to the end of the response, by ${label}`,
      labelNames: [label],
      buckets: [0.005, 0.025, 0.1, 0.5, 2, 10, 60, 300],
      registers: [registry],
    }),
    bytesServed: new Counter({
      name: `${prefix}_bytes_served_total`,
      help: 'File bytes written to clients (response bodies)',
      registers: [registry],
    }),
    tierBytes: tierBytesCounter(`${prefix}_tier_bytes_total`, registry, options.tiers),
  };
}
