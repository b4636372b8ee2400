import { serviceRegistry } from '@ferry/runtime';
import { Counter, Gauge } from 'prom-client';

/** What the chunk gauges read when Prometheus scrapes: counters kept in Redis, no scan. */
export interface ChunkGaugeSource {
  region: string;
  counts(): Promise<{ missing: number; failing: number }>;
  /** A few failing chunks with their last error. */
  failures(): Promise<Array<{ chunk: string; code: string; error: string; attempts: number }>>;
}

/** What the garbage-collection and scrub gauges read at scrape time: the region's gc hash in Redis. */
export interface GcGaugeSource {
  region: string;
  info(): Promise<Record<string, string>>;
}

/** Gauges over the region's gc counters, read once per scrape. */
function gcGauges(registry: ReturnType<typeof serviceRegistry>, source: GcGaugeSource | undefined) {
  const gauge = (name: string, help: string, field: string) =>
    new Gauge({
      name,
      help,
      labelNames: ['region'],
      registers: [registry],
      async collect() {
        if (source) this.set({ region: source.region }, Number((await source.info())[field] ?? 0));
      },
    });
  // A gauge with one series per value of `label`, read from the gc hash at scrape time.
  const labelled = (name: string, help: string, label: string, series: (info: Record<string, string>) => Array<[string, number]>) =>
    new Gauge({
      name,
      help,
      labelNames: ['region', label],
      registers: [registry],
      async collect() {
        if (!source) return;
        this.reset();
        for (const [value, n] of series(await source.info())) this.set({ region: source.region, [label]: value }, n);
      },
    });
  return {
    gcReclaimableBytes: gauge(
      'ferry_gc_reclaimable_bytes',
      'Bytes of unreferenced chunks past grace a pass could delete now: found by a dry last pass, 0 after a real one (it deleted them)',
      'reclaimable-bytes',
    ),
    gcReclaimedBytes: gauge(
      'ferry_gc_reclaimed_bytes',
      'Bytes deleted from the region store by garbage collection, ever',
      'reclaimed-bytes',
    ),
    gcReclaimedChunks: gauge(
      'ferry_gc_reclaimed_chunks',
      'Objects deleted from the region store by garbage collection, ever',
      'reclaimed-chunks',
    ),
    gcLastPass: gauge('ferry_gc_last_pass_timestamp_ms', 'When the last garbage-collection pass started', 'last-pass-at'),
    scrubVerified: gauge('ferry_scrub_chunks_verified', 'Chunks read back and found to hash to their id, ever', 'verified-chunks'),
    scrubBad: gauge('ferry_scrub_chunks_bad', 'Chunks found missing or not hashing to their id, ever', 'bad-chunks'),
    scrubRepaired: gauge('ferry_scrub_chunks_repaired', 'Bad or missing chunks copied again by a repair, ever', 'repaired-chunks'),
    gcRefused: labelled(
      'ferry_gc_refused',
      'Garbage collection refused to run here at its last pass (1, with the reason: no-cursor, resync, fenced); 0 when it ran',
      'reason',
      (info) => (info.refused ? [[info.refused, 1]] : [['', 0]]),
    ),
    gcHeldBack: labelled(
      'ferry_gc_held_back_bytes',
      'Source only: bytes past grace kept because this mirror has not acknowledged the record that dropped them (last pass)',
      'mirror',
      (info) => Object.entries(heldBackOf(info)).map(([mirror, held]) => [mirror, held.bytes]),
    ),
  };
}

/** The last pass's held-back figures per mirror, from the gc hash. */
export function heldBackOf(info: Record<string, string>): Record<string, { chunks: number; bytes: number }> {
  try {
    return JSON.parse(info['held-back'] ?? '{}') as Record<string, { chunks: number; bytes: number }>;
  } catch {
    return {};
  }
}

/** Failing chunks shown one by one in /metrics (the count covers them all). */
const FAILURE_SERIES = 10;

/**
 * The replicator's Prometheus metrics, in a registry of its own (several daemons per process in
 * tests); the process metrics (CPU, memory, event loop) only when asked. The chunk gauges read
 * the region's counters at scrape time when `chunks` is given (a mirror).
 */
export function createMetrics(options: { processMetrics?: boolean; chunks?: ChunkGaugeSource; gc?: GcGaugeSource } = {}) {
  const registry = serviceRegistry({ defaultMetrics: options.processMetrics ?? false });
  const labelNames = ['region'] as const;
  const chunks = options.chunks;
  return {
    registry,
    ...gcGauges(registry, options.gc),
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
    backfillRequests: new Counter({
      name: 'ferry_replicator_backfill_requests_total',
      help: "Readers' backfill requests taken from the region's list, by outcome (queued; skipped: present already or not referenced here; invalid: refused)",
      labelNames: [...labelNames, 'outcome'],
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
    fencedWrites: new Counter({
      name: 'ferry_replicator_fenced_writes_total',
      help: 'Writes refused because another replica had taken the lease (this one then steps down)',
      labelNames,
      registers: [registry],
    }),
    chunksFound: new Counter({
      name: 'ferry_replicator_chunks_found_in_store_total',
      help: 'Chunks found whole in the region store (HEAD, size) and marked present without copying',
      labelNames,
      registers: [registry],
    }),
    reconcilePasses: new Counter({
      name: 'ferry_replicator_reconcile_passes_total',
      help: 'Reconcile passes finished (what the region references compared with what it holds)',
      labelNames,
      registers: [registry],
    }),
    reconcileQueued: new Counter({
      name: 'ferry_replicator_reconcile_queued_total',
      help: 'Copy jobs queued by reconcile passes (missing chunks without a job, failed jobs replaced)',
      labelNames,
      registers: [registry],
    }),
    chunksMissing: new Gauge({
      name: 'ferry_replicator_chunks_missing',
      help: 'Chunks the region references and its store does not hold yet',
      labelNames,
      registers: [registry],
      async collect() {
        if (chunks) this.set({ region: chunks.region }, (await chunks.counts()).missing);
      },
    }),
    chunksFailing: new Gauge({
      name: 'ferry_replicator_chunks_failing',
      help: 'Chunks whose last copy attempt failed (retried on every reconcile pass until copied)',
      labelNames,
      registers: [registry],
      async collect() {
        if (chunks) this.set({ region: chunks.region }, (await chunks.counts()).failing);
      },
    }),
    copyFailure: new Gauge({
      name: 'ferry_replicator_copy_failure',
      help: `Attempts of the last failed copy of a failing chunk, with its error (at most ${FAILURE_SERIES} chunks)`,
      labelNames: ['region', 'chunk', 'code', 'error'],
      registers: [registry],
      async collect() {
        if (!chunks) return;
        this.reset();
        for (const f of (await chunks.failures()).slice(0, FAILURE_SERIES)) {
          this.set({ region: chunks.region, chunk: f.chunk, code: f.code, error: f.error.slice(0, 200) }, f.attempts);
        }
      },
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
