import { type Entry, FencedError, isChunkId, type Logger, messageOf, Pause } from '@ferry/core';
import { originRead } from '@ferry/fetch';
import type { CopyQueue, CopyRequest } from '@ferry/jobs';
import { type ChangeRecord, historyChange, type Lease, type Meta, type MirrorMeta, ResyncIncompleteError } from '@ferry/meta';
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

/** Thrown inside the loop when the watcher must stop acting as the leader at once. */
class LeaseLost extends Error {}

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

/**
 * Keeps this region's metadata in step with the source's change log. One replica per region
 * leads (a Redis lease with a fencing token); the leader reads records after the cursor, checks
 * that the source's history still continues from there (epoch, the record at the cursor, trims),
 * queues copy jobs for chunks the region lacks while the backlog has room, then applies the
 * records atomically with the cursor. Jobs are queued before the records are applied so a crash
 * between the two cannot lose a copy (and the reconciler finds any it missed). Every write
 * carries the lease's token: a replica whose lease was taken while it was paused has its first
 * write refused, counts it and steps down.
 */
export class Watcher {
  readonly #o: WatcherOptions & { batch: number; blockMs: number; resyncPageSize: number };
  #running: Promise<void> | undefined;
  #stopping = false;
  #token = '';
  #leaseAt = 0;
  readonly #pause = new Pause();
  lastError: string | undefined;
  lastAppliedAt: number | undefined;

  constructor(options: WatcherOptions) {
    // A read must not outlast a renewal period: the leader renews its lease between reads.
    const blockMs = Math.max(1, Math.min(options.blockMs ?? 1000, Math.floor(options.lease.ttlMs / 3)));
    this.#o = { ...options, batch: options.batch ?? 500, blockMs, resyncPageSize: options.resyncPageSize ?? 500 };
  }

  get isLeader(): boolean {
    return this.#token !== '';
  }

  /** The fencing token while this replica leads, '' otherwise (the reconciler writes with it). */
  get token(): string {
    return this.#token;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stop after the current step (a pause between steps ends at once) and give the lease back. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pause.wake();
    await this.#running;
    // Released whatever this replica believes: the script only deletes a lease this owner holds.
    await this.#o.lease.release().catch(() => {});
    this.stepDown();
  }

  /** Wait `ms`, or less when stop() is called. */
  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return this.#pause.sleep(ms);
  }

  async #loop(): Promise<void> {
    const { logger, lease } = this.#o;
    let failures = 0;
    while (!this.#stopping) {
      try {
        if (!(await this.#lead())) {
          await this.#sleep(Math.min(1000, lease.ttlMs / 3));
          continue;
        }
        await this.#step();
        failures = 0;
        this.lastError = undefined;
      } catch (err) {
        if (err instanceof LeaseLost) {
          this.stepDown();
          continue;
        }
        if (err instanceof FencedError) {
          this.refused(err);
          continue;
        }
        if (err instanceof ResyncIncompleteError) {
          // The next step starts it over (its state says it did not finish).
          logger.warn({ reason: err.message }, 'resync could not finish; starting it over');
          await this.#sleep(200);
          continue;
        }
        failures += 1;
        this.lastError = messageOf(err);
        // Another replica may lead by the time this one is back: take the lease anew.
        this.stepDown();
        logger.warn({ err, failures }, 'watcher step failed; retrying');
        await this.#sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
      }
    }
  }

  /** A write of this replica was refused by its fencing token: count it and step down. */
  refused(err: FencedError): void {
    this.#o.metrics.fencedWrites.inc({ region: this.#o.region });
    this.#o.logger.warn({ reason: err.message }, 'a write was refused: another replica took the lease; stepping down');
    this.stepDown();
  }

  stepDown(): void {
    if (this.#token !== '') this.#o.logger.info('watcher lost the lease; another replica may lead now');
    this.#token = '';
    this.#o.metrics.leader.set({ region: this.#o.region }, 0);
  }

  /** Take or renew the lease when a third of its time has passed; false when another replica leads. */
  async #lead(): Promise<boolean> {
    const now = Date.now();
    if (this.#token !== '' && now - this.#leaseAt < this.#o.lease.ttlMs / 3) return true;
    const token = await this.#o.lease.hold();
    if ((token !== '') !== this.isLeader) {
      this.#o.logger.info({ leader: token !== '', token }, token ? 'watcher leads in this region' : 'another replica leads the watcher');
    }
    this.#token = token;
    this.#leaseAt = now;
    this.#o.metrics.leader.set({ region: this.#o.region }, token ? 1 : 0);
    return token !== '';
  }

  /** One read-and-apply round, or a full resync when the source's history does not continue from the cursor. */
  async #step(): Promise<void> {
    const { source, mirror, region, metrics, logger } = this.#o;
    const cursor = await mirror.cursor();
    if (cursor === undefined) return this.resync('the region has never synced', 'info');
    const unfinished = await mirror.resyncState();
    if (unfinished && unfinished.state !== 'done') {
      return this.resync(`a resync did not finish (${unfinished.problem ?? `it was ${unfinished.state}`}); starting it over`);
    }
    const records = await source.readChanges(cursor, { count: this.#o.batch, blockMs: this.#o.blockMs });
    if (this.#stopping) return;
    // Checked after the read: a flush, rollback or trim racing the read would otherwise leave a silent gap.
    const history = await source.history(cursor);
    const tracking = await mirror.tracking();
    const change = historyChange({ cursor, ...(tracking.epoch ? { epoch: tracking.epoch } : {}) }, history);
    if (change) return this.resync(change);
    if (tracking.epoch === undefined) {
      logger.info({ epoch: history.epoch }, "recording the source's epoch with the cursor");
      await mirror.track(cursor, { epoch: history.epoch }, this.#token);
    }
    const caughtUp = records.length === 0 ? cursor : records.at(-1)?.id;
    // Records ever added at the source up to the first record: known from what was recorded with
    // the cursor, or when this read reached the end of the log (its last record is the log's last).
    let added = tracking.added === undefined ? undefined : tracking.added + 1;
    if (added === undefined && caughtUp === history.last) added = history.added - records.length + 1;
    if (records.length === 0) {
      if (tracking.added === undefined && added !== undefined) await mirror.track(cursor, { added: added - 1 }, this.#token);
      metrics.lagRecords.set({ region }, 0);
      metrics.lagSeconds.set({ region }, 0);
      return;
    }
    await this.#queueCopies(records.flatMap((r) => r.put));
    const result = await mirror.apply(records, { token: this.#token, ...(added === undefined ? {} : { added }) });
    metrics.recordsApplied.inc({ region }, result.applied);
    this.lastAppliedAt = Date.now();
    if (result.cursor) await source.setAck(region, result.cursor);
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
  async resync(reason: string, level: 'info' | 'warn' = 'warn'): Promise<void> {
    const { source, mirror, region, metrics, logger } = this.#o;
    metrics.resyncs.inc({ region });
    logger[level]({ reason }, 'full resync from a snapshot of the source');
    const done = await runResync({
      source,
      mirror,
      token: this.#token,
      pageSize: this.#o.resyncPageSize,
      reason,
      queueCopies: (entries) => this.#queueCopies(entries),
      stopping: () => {
        if (this.#stopping) throw new LeaseLost('stopping');
      },
    });
    await source.setAck(region, done.snapshot);
    this.lastAppliedAt = Date.now();
    metrics.lagRecords.set({ region }, 0);
    logger.info({ ...done }, 'resync done');
    this.#o.onBacklogDeferred?.();
  }
}
