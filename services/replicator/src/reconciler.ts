import { type ChunkId, FencedError, type Logger, messageOf, Pause } from '@ferry/core';
import type { CopyQueue, CopyRequest } from '@ferry/jobs';
import type { Meta, MirrorMeta } from '@ferry/meta';
import type { Metrics } from './metrics.js';
import { copyRequests } from './watcher.js';

export interface ReconcilerOptions {
  region: string;
  /** This region's metadata read as entries (its HSCAN is the walk). */
  meta: Meta;
  mirror: MirrorMeta;
  copies: CopyQueue;
  /** The leader's fencing token, '' when this replica does not lead (then the reconciler waits). */
  token: () => string;
  /** Called when a write was refused: this replica no longer leads. */
  onFenced: (err: FencedError) => void;
  /** Time between passes (copy.reconcileEvery). */
  everyMs: number;
  metrics: Metrics;
  logger: Logger;
  /** How often a pass waiting for room in the backlog looks again (default 500 ms). */
  pollMs?: number;
}

/** Chunk ids per reconcile script call. */
const IDS_PER_CALL = 1000;

/** A pass stops where it is when this replica no longer leads or is stopping. */
class PassAborted extends Error {}

/**
 * What makes a mirror converge without a person: every `everyMs` the leading watcher's replica
 * walks what the region references (its entries), corrects the set of missing chunks (one fenced
 * script per batch), and queues a copy for each missing chunk that has no job waiting or running
 * (a failed job is replaced, not ignored). The queue never holds more than the backlog: when it
 * is full, the pass waits until copies have drained it to half, then goes on where it was, so a
 * new mirror of millions of chunks is copied in a bounded queue. A chunk whose copy keeps failing
 * is queued again on every pass and stays visible with its last error until it is copied.
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  #running: Promise<void> | undefined;
  #stopping = false;
  readonly #pause = new Pause();
  #soon = false;
  lastError: string | undefined;
  passes = 0;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pause.wake();
    await this.#running;
  }

  /** Run a pass soon (chunks were left out of a full backlog, or a resync finished). */
  wake(): void {
    this.#soon = true;
    this.#pause.wake();
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return this.#pause.sleep(ms);
  }

  async #loop(): Promise<void> {
    const { logger, everyMs } = this.#o;
    while (!this.#stopping) {
      const token = this.#o.token();
      if (!token) {
        await this.#sleep(Math.min(1000, everyMs));
        continue;
      }
      this.#soon = false;
      try {
        await this.pass(token);
        this.lastError = undefined;
      } catch (err) {
        if (err instanceof FencedError) this.#o.onFenced(err);
        else if (!(err instanceof PassAborted)) {
          this.lastError = messageOf(err);
          logger.warn({ err }, 'reconcile pass failed; trying again next period');
        }
      }
      if (!this.#soon) await this.#sleep(everyMs);
    }
  }

  #check(token: string): void {
    if (this.#stopping || this.#o.token() !== token) throw new PassAborted();
  }

  /** One pass over the region's entries, its missing set and its failure records; returns how many copies it queued. */
  async pass(token: string): Promise<{ missing: number; queued: number }> {
    const { meta, mirror, copies, metrics, region, logger } = this.#o;
    const started = Date.now();
    // Failed jobs left from a version that kept them would block their chunks' jobs.
    await copies.dropFailed();
    let missing = 0;
    let queued = 0;
    let cursor: string | undefined;
    do {
      this.#check(token);
      const page = await meta.scanEntries({ count: 200, ...(cursor ? { cursor } : {}) });
      cursor = page.cursor;
      const requests = copyRequests(page.entries);
      for (let i = 0; i < requests.length; i += IDS_PER_CALL) {
        const slice = requests.slice(i, i + IDS_PER_CALL);
        const lacking = new Set<string>(
          await mirror.chunks.reconcile(
            slice.map((r) => r.chunk),
            token,
          ),
        );
        missing += lacking.size;
        queued += await this.#queue(
          slice.filter((r) => lacking.has(r.chunk)),
          token,
        );
      }
    } while (cursor);
    // Members of the missing set that no entry references any more (or that are present) leave it.
    for await (const ids of mirror.chunks.scanMissing()) {
      this.#check(token);
      if (ids.length > 0) await mirror.chunks.reconcile(ids, token);
    }
    // Failure records of chunks that were deleted (or copied) since they failed are dropped.
    for await (const ids of mirror.chunks.scanFailing()) {
      this.#check(token);
      if (ids.length > 0) await mirror.chunks.reconcile(ids, token);
    }
    const ms = Date.now() - started;
    this.passes += 1;
    await mirror.chunks.reconcile([], token, { at: Date.now(), ms, missing, queued, passes: this.passes });
    metrics.reconcilePasses.inc({ region });
    metrics.reconcileQueued.inc({ region }, queued);
    if (queued > 0 || missing > 0) logger.info({ missing, queued, ms }, 'reconcile pass: queued copies of missing chunks');
    return { missing, queued };
  }

  /** Queue `requests`, waiting for room in the backlog as often as needed. */
  async #queue(requests: CopyRequest[], token: string): Promise<number> {
    const { copies } = this.#o;
    let queued = 0;
    let left = requests;
    for (;;) {
      if (left.length === 0) return queued;
      const result = await copies.enqueue(left, { ifRoom: true });
      queued += result.queued;
      if (result.deferred === 0) return queued;
      // Full: wait until copies have drained half of it, then queue the rest (those already queued are skipped).
      do {
        this.#check(token);
        await this.#sleep(this.#o.pollMs ?? 500);
        this.#check(token);
      } while ((await copies.held()) > copies.backlog / 2);
      left = await stillMissing(this.#o.mirror, left);
    }
  }
}

/** The requests whose chunks are still not present (some were copied while the pass waited). */
async function stillMissing(mirror: MirrorMeta, requests: CopyRequest[]): Promise<CopyRequest[]> {
  const lacking = new Set<ChunkId>(await mirror.missing(requests.map((r) => r.chunk)));
  return requests.filter((r) => lacking.has(r.chunk));
}
