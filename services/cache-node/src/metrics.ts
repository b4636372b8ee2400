import { serviceRegistry } from '@ferry/runtime';
import { Counter, Gauge } from 'prom-client';

/**
 * A cache node's Prometheus metrics, in a registry of its own (tests run several nodes per
 * process); the process metrics (CPU, memory, event loop) only when asked.
 */
export function createCacheMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = serviceRegistry({ defaultMetrics: options.processMetrics ?? false });
  const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  /** A counter whose count the node also reads itself (its heartbeat carries hits and misses for a hit ratio). */
  const tallied = (name: string, help: string) => {
    const c = counter(name, help);
    let n = 0;
    return {
      inc: () => {
        n += 1;
        c.inc();
      },
      get count() {
        return n;
      },
    };
  };
  /** The node's admission, read when scraped (set by the app). */
  const live: { inflight: { streams: number; bytes: number } | undefined } = { inflight: undefined };
  new Gauge({
    name: 'ferry_cache_streams',
    help: 'Chunk requests in progress (beyond limits.maxStreams: 503)',
    registers: [registry],
    collect() {
      this.set(live.inflight?.streams ?? 0);
    },
  });
  new Gauge({
    name: 'ferry_cache_inflight_bytes',
    help: 'Bytes of distinct chunks held for requests in progress (beyond limits.maxBytesInFlight: 503)',
    registers: [registry],
    collect() {
      this.set(live.inflight?.bytes ?? 0);
    },
  });
  return {
    set inflight(source: { streams: number; bytes: number }) {
      live.inflight = source;
    },
    busy: counter('ferry_cache_busy_total', 'Chunk requests answered 503 because the node was at its limits'),
    registry,
    hits: tallied('ferry_cache_hits_total', 'Chunk reads served from local disk'),
    misses: tallied('ferry_cache_misses_total', 'Chunk reads of chunks not held (or held corrupt)'),
    bytesServed: counter('ferry_cache_bytes_served_total', 'Chunk bytes sent to clients'),
    upstreamFetches: counter(
      'ferry_cache_upstream_fetches_total',
      'Read-through fetches from the region stores (one per chunk however many clients wait)',
    ),
    upstreamBytes: counter('ferry_cache_upstream_bytes_total', 'Verified bytes fetched from the region stores'),
    upstreamFailures: counter('ferry_cache_upstream_failures_total', 'Read-through fetches that failed (store unreachable, corrupt copy)'),
    stored: counter('ferry_cache_stored_total', 'Chunks written to disk', ['via']),
    evictions: counter('ferry_cache_evictions_total', 'Chunks removed from disk', ['reason']),
    corrupt: counter(
      'ferry_cache_corrupt_total',
      'Copies that failed verification: cached files (on read, by the scrub, reported by a reader), refused uploads, store copies met on a read-through (upstream)',
      ['where'],
    ),
    scrubbedBytes: counter('ferry_cache_scrubbed_bytes_total', 'Bytes of held chunks hashed again by the background scrub'),
    scrubPasses: counter('ferry_cache_scrub_passes_total', 'Passes of the background scrub over every held chunk'),
    used: gauge('ferry_cache_used_bytes', 'Bytes of chunk files held (and reserved by writes in flight)'),
    capacity: gauge('ferry_cache_capacity_bytes', 'Bytes the node may hold'),
    chunks: gauge('ferry_cache_chunks', 'Chunks held'),
  };
}

export type CacheMetrics = ReturnType<typeof createCacheMetrics>;
