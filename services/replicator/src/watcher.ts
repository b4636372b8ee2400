import { type Entry, isChunkId, type Logger } from '@ferry/core';
import { originRead } from '@ferry/fetch';
import type { CopyQueue, CopyRequest } from '@ferry/jobs';
import { type ChangeRecord, historyChange, type Lease, type Meta, type MirrorMeta, ResyncIncompleteError } from '@ferry/meta';
import { LeaderLoop, LeadershipLost } from './leader-loop.js';
import type { Metrics } from './metrics.js';
import { runResync } from './resync.js';

export interface WatcherOptions {
  region: string;
  /** The source region's metadata (its change log, entries and acks). */
  source: Meta;
  /** This region's metadata. */
  mirror: MirrorMeta;
  lease: Lease;
  copies: CopyQueue;
  metrics: Metrics;
  logger: Logger;
  /** Records read per batch (default 500). */
  batch?: number;
  /** How long one read waits for new records (default 1000 ms, at most a third of the lease). */
  blockMs?: number;
  /** Source entries read per page of a resync (default 500). */
  resyncPageSize?: number;
  /** Called when chunks may be missing that were not queued (a full backlog, a resync): the reconciler looks sooner. */
  onBacklogDeferred?: () => void;
}

/** Copy requests for the chunks of entries (first chunk of each file marked), one per chunk id. */
export function copyRequests(entries: Entry[]): CopyRequest[] {
  const requests = new Map<string, CopyRequest>();
  for (const entry of entries) {
    let offset = 0;
    for (const [index, ref] of entry.chunks.entries()) {
      const known = requests.get(ref.id);
      if (known) known.first ||= index === 0;
      else {
        const origin = originRead(ref, { entry, offset });
        requests.set(ref.id, { chunk: ref.id, size: ref.size, first: index === 0, ...(origin ? { origin } : {}) });
      }
      offset += ref.size;
    }
  }
  return [...requests.values()];
}

/** While no records arrive, how often the watcher checks the source's history (epoch, bounds, cursor record). */
const IDLE_HISTORY_EVERY_MS = 5_000;

/**
 * Keeps this region's metadata in step with the source's change log. One replica per region
 * leads (a Redis lease with a fencing token); the leader reads records after the cursor, checks
 * that the source's history still continues from there (epoch, the record at the cursor, trims),
 * applies the records atomically with the cursor, then queues copy jobs for the chunks the
 * region lacks while the backlog has room. A crash between the two loses no copy: the applied
 * chunks are in the missing set, which the reconciler's next pass queues. Every write
 * carries the lease's token: a replica whose lease was taken while it was paused has its first
 * write refused, counts it and steps down.
 */
export class Watcher extends LeaderLoop {
  readonly #o: WatcherOptions & { batch: number; blockMs: number; resyncPageSize: number };
  lastAppliedAt: number | undefined;
  #historyCheckedAt = 0;

  constructor(options: WatcherOptions) {
    super({
      task: 'watcher',
      lease: options.lease,
      retry: 'backoff',
      step: async (token) => {
        try {
          await this.#step(token);
        } catch (err) {
          // A resync that could not finish is started over by the next step (its state says so).
          if (!(err instanceof ResyncIncompleteError)) throw err;
          options.logger.warn({ reason: err.message }, 'resync could not finish; starting it over');
          return 200;
        }
        return 0;
      },
      onFenced: () => options.metrics.fencedWrites.inc({ region: options.region }),
      onLeadership: (leading) => options.metrics.leader.set({ region: options.region }, leading ? 1 : 0),
      logger: options.logger,
    });
    // A read must not outlast a renewal period: the leader renews its lease between reads.
    const blockMs = Math.max(1, Math.min(options.blockMs ?? 1000, Math.floor(options.lease.ttlMs / 3)));
    this.#o = { ...options, batch: options.batch ?? 500, blockMs, resyncPageSize: options.resyncPageSize ?? 500 };
  }

  /** One read-and-apply round, or a full resync when the source's history does not continue from the cursor. */
  async #step(token: string): Promise<void> {
    const { source, mirror, region, metrics, logger } = this.#o;
    const cursor = await mirror.cursor();
    if (cursor === undefined) return this.resync(token, 'the region has never synced', 'info');
    const unfinished = await mirror.resyncState();
    if (unfinished && unfinished.state !== 'done') {
      return this.resync(token, `a resync did not finish (${unfinished.problem ?? `it was ${unfinished.state}`}); starting it over`);
    }
    const records = await source.log.readChanges(cursor, { count: this.#o.batch, blockMs: this.#o.blockMs });
    if (this.stopping) return;
    if (records.length === 0 && Date.now() - this.#historyCheckedAt < IDLE_HISTORY_EVERY_MS) {
      // Idle: the history check reads the log's first and last records and the cursor's (whole,
      // however many files they hold), so while nothing arrives it runs every few seconds, not
      // after every empty read; a source that restarts empty is still noticed within that time.
      metrics.lagRecords.set({ region }, 0);
      metrics.lagSeconds.set({ region }, 0);
      return;
    }
    this.#historyCheckedAt = Date.now();
    // Checked after the read: a flush, rollback or trim racing the read would otherwise leave a silent gap.
    const history = await source.log.history(cursor);
    const tracking = await mirror.tracking();
    const change = historyChange({ cursor, ...(tracking.epoch ? { epoch: tracking.epoch } : {}) }, history);
    if (change) return this.resync(token, change);
    if (tracking.epoch === undefined) {
      logger.info({ epoch: history.epoch }, "recording the source's epoch with the cursor");
      await mirror.track(cursor, { epoch: history.epoch }, token);
    }
    const caughtUp = records.length === 0 ? cursor : records.at(-1)?.id;
    // Records ever added at the source up to the first record: known from what was recorded with
    // the cursor, or when this read reached the end of the log (its last record is the log's last).
    let added = tracking.added === undefined ? undefined : tracking.added + 1;
    if (added === undefined && caughtUp === history.last) added = history.added - records.length + 1;
    if (records.length === 0) {
      if (tracking.added === undefined && added !== undefined) await mirror.track(cursor, { added: added - 1 }, token);
      metrics.lagRecords.set({ region }, 0);
      metrics.lagSeconds.set({ region }, 0);
      return;
    }
    const result = await mirror.apply(records, { token: token, ...(added === undefined ? {} : { added }) });
    // Copies are queued after the apply: a chunk copied before its record is applied would be
    // unreferenced meanwhile, and collected if the apply came later than the grace. A crash in
    // between loses nothing: the applied chunks are in the missing set, which the reconciler queues.
    await this.#queueCopies(records.flatMap((r) => r.put));
    metrics.recordsApplied.inc({ region }, result.applied);
    this.lastAppliedAt = Date.now();
    if (result.cursor) await source.log.setAck(region, result.cursor);
    this.#observeLag(records, added === undefined ? undefined : history.added - (added + records.length - 1));
  }

  #observeLag(records: ChangeRecord[], behind: number | undefined): void {
    const { metrics, region } = this.#o;
    const last = records.at(-1);
    if (behind !== undefined) metrics.lagRecords.set({ region }, Math.max(0, behind));
    if (last) metrics.lagSeconds.set({ region }, behind === 0 ? 0 : Math.max(0, (Date.now() - last.time) / 1000));
  }

  /** Queue copies of the chunks of `entries` the region lacks, as far as the backlog has room. */
  async #queueCopies(entries: Entry[]): Promise<void> {
    const requests = copyRequests(entries);
    if (requests.length === 0) return;
    const missing = new Set<string>(await this.#o.mirror.missing(requests.map((r) => r.chunk).filter(isChunkId)));
    const result = await this.#o.copies.enqueue(
      requests.filter((r) => missing.has(r.chunk)),
      { ifRoom: true },
    );
    if (result.deferred > 0) this.#o.onBacklogDeferred?.();
  }

  /**
   * Rebuild this region's metadata from a snapshot of the source (see resync.ts). A resync cut
   * short, refused or found incomplete is started over by the next step of whoever leads.
   */
  async resync(token: string, reason: string, level: 'info' | 'warn' = 'warn'): Promise<void> {
    const { source, mirror, region, metrics, logger } = this.#o;
    metrics.resyncs.inc({ region });
    logger[level]({ reason }, 'full resync from a snapshot of the source');
    const done = await runResync({
      source,
      mirror,
      token: token,
      pageSize: this.#o.resyncPageSize,
      reason,
      queueCopies: (entries) => this.#queueCopies(entries),
      stopping: () => {
        if (this.stopping) throw new LeadershipLost('watcher');
      },
    });
    await source.log.setAck(region, done.snapshot);
    this.lastAppliedAt = Date.now();
    metrics.lagRecords.set({ region }, 0);
    logger.info({ ...done }, 'resync done');
    this.#o.onBacklogDeferred?.();
  }
}
