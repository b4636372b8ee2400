import { collectDefaultMetrics, Registry } from 'prom-client';

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
