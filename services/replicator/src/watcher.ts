import { type ChunkId, type Entry, isChunkId, type Logger, messageOf } from '@ferry/core';
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Copy requests for the chunks of entries (first chunk of each file marked), one per chunk id. */
export function copyRequests(entries: Entry[]): CopyRequest[] {
  const requests = new Map<string, CopyRequest>();
  for (const entry of entries) {
    let offset = 0;
    for (const [index, ref] of entry.chunks.entries()) {
      const known = requests.get(ref.id);
      if (known) known.first ||= index === 0;
      else {
        const origin =
          entry.origin && ref.id.startsWith('ext-')
            ? { store: entry.origin.store, key: entry.origin.key, etag: entry.origin.etag, offset }
            : undefined;
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
 */
export class Watcher {
  readonly #o: Required<Omit<WatcherOptions, 'logger'>> & { logger: Logger };
  #running: Promise<void> | undefined;
  #stopping = false;
  #leader = false;
  #leaseAt = 0;
  lastError: string | undefined;
  lastAppliedAt: number | undefined;

  constructor(options: WatcherOptions) {
    this.#o = { batch: 500, blockMs: 1000, leaseTtlMs: 5000, ...options };
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
    if (this.#leader) await this.#o.lease.release().catch(() => {});
    this.#leader = false;
    this.#o.metrics.leader.set({ region: this.#o.region }, 0);
  }

  async #loop(): Promise<void> {
    const { logger, leaseTtlMs } = this.#o;
    let failures = 0;
    while (!this.#stopping) {
      try {
        if (!(await this.#lead())) {
          await sleep(Math.min(1000, leaseTtlMs / 3));
          continue;
        }
        await this.#step();
        failures = 0;
        this.lastError = undefined;
      } catch (err) {
        failures += 1;
        this.lastError = messageOf(err);
        this.#leader = false;
        logger.warn({ err, failures }, 'watcher step failed; retrying');
        await sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
      }
    }
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
   */
  async resync(reason: string, level: 'info' | 'warn' = 'warn'): Promise<void> {
    const { source, mirror, region, metrics, logger } = this.#o;
    const started = Date.now();
    metrics.resyncs.inc({ region });
    logger[level]({ reason }, 'full resync from a snapshot of the source');
    const snapshot = await source.snapshotId();
    await mirror.beginResync(snapshot);
    let written = 0;
    let seen = 0;
    let cursor: string | undefined;
    do {
      if (this.#stopping) return;
      const page = await source.scanEntries({ count: 500, ...(cursor ? { cursor } : {}) });
      await this.#queueCopies(page.entries);
      written += await mirror.applySnapshot(page.entries);
      seen += page.entries.length;
      cursor = page.cursor;
    } while (cursor);
    const removed = await mirror.finishResync(snapshot);
    await source.setAck(region, snapshot);
    this.lastAppliedAt = Date.now();
    logger.info({ snapshot, seen, written, removed, ms: Date.now() - started }, 'resync done');
  }
}
