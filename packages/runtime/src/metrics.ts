import { Counter, collectDefaultMetrics, Registry } from 'prom-client';

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
 * A service's Prometheus registry: one per service instance, never prom-client's global one, so
 * several services in one process (tests, `ferry demo`) do not mix their counts.
 */
export function serviceRegistry(options: ServiceRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.labels) registry.setDefaultLabels(options.labels);
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
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
