import { type ChunkId, type Entry, isChunkId, type Logger, messageOf } from '@ferry/core';
import { originRead } from '@ferry/fetch';
import type { CopyQueue, CopyRequest } from '@ferry/jobs';
import { type ChangeRecord, type Lease, type Meta, type MirrorMeta, needsResync } from '@ferry/meta';
import type { Metrics } from './metrics.js';

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
  /** How long one read waits for new records (default 1000 ms). */
  blockMs?: number;
  /** Lease time; a dead leader is replaced after about this long (default 5000 ms). */
  leaseTtlMs?: number;
}

/** Thrown when a renewal finds another replica holding the lease: this one stops acting at once. */
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
 * leads (a Redis lease); the leader reads records after the cursor, queues copy jobs for chunks
 * the region lacks, then applies the records atomically with the cursor. Jobs are queued before
 * the records are applied so a crash between the two cannot lose a copy (queueing is idempotent).
 * The leader renews its lease right before every write (each apply, each page of a resync), so a
 * leader that was paused or cut off past its lease stops instead of writing beside its successor.
 */
export class Watcher {
  readonly #o: Required<Omit<WatcherOptions, 'logger'>> & { logger: Logger };
  #running: Promise<void> | undefined;
  #stopping = false;
  #leader = false;
  #leaseAt = 0;
  #wake: (() => void) | undefined;
  lastError: string | undefined;
  lastAppliedAt: number | undefined;

  constructor(options: WatcherOptions) {
    const leaseTtlMs = options.leaseTtlMs ?? 5000;
    // A read must not outlast the lease: the leader renews it between reads.
    const blockMs = Math.max(1, Math.min(options.blockMs ?? 1000, Math.floor(leaseTtlMs / 3)));
    this.#o = { ...options, batch: options.batch ?? 500, blockMs, leaseTtlMs };
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stop after the current step (a pause between steps ends at once) and give the lease back. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#running;
    // Released whatever this replica believes: the script only deletes a lease this owner holds.
    await this.#o.lease.release().catch(() => {});
    this.#leader = false;
    this.#o.metrics.leader.set({ region: this.#o.region }, 0);
  }

  /** Wait `ms`, or less when stop() is called. */
  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  async #loop(): Promise<void> {
    const { logger, leaseTtlMs } = this.#o;
    let failures = 0;
    while (!this.#stopping) {
      try {
        if (!(await this.#lead())) {
          await this.#sleep(Math.min(1000, leaseTtlMs / 3));
          continue;
        }
        await this.#step();
        failures = 0;
        this.lastError = undefined;
      } catch (err) {
        if (err instanceof LeaseLost) {
          this.#stepDown();
          continue;
        }
        failures += 1;
        this.lastError = messageOf(err);
        // Another replica may lead by the time this one is back: take the lease anew.
        this.#stepDown();
        logger.warn({ err, failures }, 'watcher step failed; retrying');
        await this.#sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
      }
    }
  }

  #stepDown(): void {
    if (this.#leader) this.#o.logger.info('watcher lost the lease; another replica may lead now');
    this.#leader = false;
    this.#o.metrics.leader.set({ region: this.#o.region }, 0);
  }

  /** Take or renew the lease when a third of its time has passed; false when another replica leads. */
  async #lead(): Promise<boolean> {
    const now = Date.now();
    if (this.#leader && now - this.#leaseAt < this.#o.leaseTtlMs / 3) return true;
    const held = await this.#o.lease.hold();
    if (held !== this.#leader)
      this.#o.logger.info({ leader: held }, held ? 'watcher leads in this region' : 'another replica leads the watcher');
    this.#leader = held;
    this.#leaseAt = now;
    this.#o.metrics.leader.set({ region: this.#o.region }, held ? 1 : 0);
    return held;
  }

  /**
   * Renew the lease right before a write to this region's metadata, so a replica whose lease
   * ran out (a long read, a pause) finds out before it writes, not after another replica has
   * taken over; throws LeaseLost then. A write follows a renewal by milliseconds and the lease
   * lasts seconds, so two replicas do not write at once short of a process pause longer than
   * the lease.
   */
  async #confirmLease(): Promise<void> {
    const now = Date.now();
    if (this.#stopping) throw new LeaseLost('stopping');
    if (!(await this.#o.lease.hold())) throw new LeaseLost('the watcher lease is held by another replica');
    this.#leaseAt = now;
  }

  /** One read-and-apply round (or a full resync when the log no longer reaches back to the cursor). */
  async #step(): Promise<void> {
    const { source, mirror, region, metrics } = this.#o;
    const cursor = await mirror.cursor();
    if (cursor === undefined) {
      await this.resync('the region has never synced', 'info');
      return;
    }
    const records = await source.readChanges(cursor, { count: this.#o.batch, blockMs: this.#o.blockMs });
    // Checked after the read: a trim racing the read would otherwise leave a silent gap.
    if (needsResync(cursor, await source.logBounds())) {
      await this.resync(`the change log was trimmed past the cursor ${cursor}`);
      return;
    }
    if (records.length === 0 || this.#stopping) return;
    await this.#queueCopies(records.flatMap((r) => r.put));
    await this.#confirmLease();
    const result = await mirror.apply(records);
    metrics.recordsApplied.inc({ region }, result.applied);
    this.lastAppliedAt = Date.now();
    if (result.cursor) await source.setAck(region, result.cursor);
    this.#observeLag(records);
  }

  #observeLag(records: ChangeRecord[]): void {
    const last = records.at(-1);
    if (last) this.#o.metrics.lagSeconds.set({ region: this.#o.region }, Math.max(0, (Date.now() - last.time) / 1000));
  }

  async #queueCopies(entries: Entry[]): Promise<void> {
    const requests = copyRequests(entries);
    const missing = new Set<ChunkId>(await this.#o.mirror.missing(requests.map((r) => r.chunk).filter(isChunkId)));
    await this.#o.copies.enqueue(requests.filter((r) => missing.has(r.chunk)));
  }

  /**
   * Rebuild this region's metadata from a snapshot of the source: take the log id first, apply
   * every source entry (only newer versions win), remove what the source no longer has, and set
   * the cursor to that id in the same step as the last removal; the log is read on from there.
   * The lease is renewed before each page; a resync cut short is started over by the next leader.
   */
  async resync(reason: string, level: 'info' | 'warn' = 'warn'): Promise<void> {
    const { source, mirror, region, metrics, logger } = this.#o;
    const started = Date.now();
    metrics.resyncs.inc({ region });
    logger[level]({ reason }, 'full resync from a snapshot of the source');
    const snapshot = await source.snapshotId();
    await this.#confirmLease();
    const resync = await mirror.beginResync(snapshot, reason);
    let written = 0;
    let seen = 0;
    let cursor: string | undefined;
    do {
      const page = await source.scanEntries({ count: 500, ...(cursor ? { cursor } : {}) });
      await this.#queueCopies(page.entries);
      await this.#confirmLease();
      written += await mirror.applySnapshot(resync, page.entries);
      seen += page.entries.length;
      cursor = page.cursor;
    } while (cursor);
    const removed = await mirror.finishResync(resync, { beforePage: () => this.#confirmLease() });
    await source.setAck(region, snapshot);
    this.lastAppliedAt = Date.now();
    logger.info({ snapshot, seen, written, removed, ms: Date.now() - started }, 'resync done');
  }
}
