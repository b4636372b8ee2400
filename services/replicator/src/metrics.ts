import { serviceRegistry } from '@ferry/runtime';
import { Counter, Gauge } from 'prom-client';

/**
 * The replicator's Prometheus metrics, in a registry of its own (several daemons per process in
 * tests); the process metrics (CPU, memory, event loop) only when asked.
 */
export function createMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = serviceRegistry({ defaultMetrics: options.processMetrics ?? false });
  const labelNames = ['region'] as const;
  return {
    registry,
    lagRecords: new Gauge({
      name: 'ferry_replicator_lag_records',
      help: 'Change records not yet applied',
      labelNames,
      registers: [registry],
    }),
    lagSeconds: new Gauge({
      name: 'ferry_replicator_lag_seconds',
      help: 'Age of the oldest change record not yet applied',
      labelNames,
      registers: [registry],
    }),
    recordsApplied: new Counter({
      name: 'ferry_replicator_records_applied_total',
      help: 'Change records applied',
      labelNames,
      registers: [registry],
    }),
    chunksCopied: new Counter({
      name: 'ferry_replicator_chunks_copied_total',
      help: 'Chunks copied into the region store',
      labelNames,
      registers: [registry],
    }),
    bytesCopied: new Counter({
      name: 'ferry_replicator_bytes_copied_total',
      help: 'Bytes copied into the region store',
      labelNames,
      registers: [registry],
    }),
    copyFailures: new Counter({
      name: 'ferry_replicator_copy_failures_total',
      help: 'Failed copy attempts (each retry counts)',
      labelNames,
      registers: [registry],
    }),
    corruptChunks: new Counter({
      name: 'ferry_replicator_corrupt_chunks_total',
      help: 'Chunk copies refused because the bytes did not match the id',
      labelNames,
      registers: [registry],
    }),
    resyncs: new Counter({
      name: 'ferry_replicator_resyncs_total',
      help: 'Full resyncs from a snapshot of the source',
      labelNames,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'ferry_replicator_queue_depth',
      help: 'Copy jobs by state',
      labelNames: ['region', 'state'],
      registers: [registry],
    }),
    warmRuleWarmups: new Counter({
      name: 'ferry_replicator_warm_rule_warmups_total',
      help: 'Warmups queued by warm rules (one per change record with files under a rule)',
      labelNames,
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'ferry_replicator_leader',
      help: '1 while this replica holds the watcher lease',
      labelNames,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
