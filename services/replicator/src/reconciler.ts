import type { ChunkId, FencedError, Logger } from '@ferry/core';
import type { CopyQueue, CopyRequest } from '@ferry/jobs';
import type { Meta, MirrorMeta } from '@ferry/meta';
import { LeaderLoop } from './leader-loop.js';
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
  /** Time between full walks of the entries (copy.fullReconcileEvery); light passes in between. */
  fullEveryMs: number;
  metrics: Metrics;
  logger: Logger;
  /** How often a pass waiting for room in the backlog looks again (default 500 ms). */
  pollMs?: number;
}

/** Chunk ids per reconcile script call. */
const IDS_PER_CALL = 1000;

/**
 * What makes a mirror converge without a person: every `everyMs` the leading watcher's replica
 * walks what the region references (its entries), corrects the set of missing chunks (one fenced
 * script per batch), and queues a copy for each missing chunk that has no job waiting or running
 * (a failed job is replaced, not ignored). The queue never holds more than the backlog: when it
 * is full, the pass waits until copies have drained it to half, then goes on where it was, so a
 * new mirror of millions of chunks is copied in a bounded queue. A chunk whose copy keeps failing
 * is queued again on every pass and stays visible with its last error until it is copied.
 */
export class Reconciler extends LeaderLoop {
  readonly #o: ReconcilerOptions;
  /** When the last full walk started (ms); none yet in this process. */
  #lastFull: number | undefined;

  constructor(options: ReconcilerOptions) {
    super({
      task: 'reconcile',
      follow: options.token,
      retry: { periodMs: options.everyMs },
      step: async (token, check) => {
        await this.pass(token, check);
        return options.everyMs;
      },
      onFenced: (err) => options.onFenced(err),
      logger: options.logger,
    });
    this.#o = options;
  }

  /**
   * One pass; returns how many copies it queued. The scripts keep the missing set and the failure
   * records as changes land, so when both are empty and a full walk happened within
   * `fullEveryMs` (and since the last resync), the pass ends there: an idle mirror costs two
   * counts per pass, whatever its size. Otherwise it walks the region's entries, its missing set
   * and its failure records.
   */
  async pass(token: string, check: () => void = () => {}): Promise<{ missing: number; queued: number }> {
    const { meta, mirror, copies, metrics, region, logger } = this.#o;
    const started = Date.now();
    if (await this.#idle()) {
      await mirror.chunks.reconcile([], token, {
        at: started,
        ms: Date.now() - started,
        missing: 0,
        queued: 0,
        passes: this.passes + 1,
        full: 0,
      });
      metrics.reconcilePasses.inc({ region });
      return { missing: 0, queued: 0 };
    }
    // Failed jobs left from a version that kept them would block their chunks' jobs; batched
    // chunks still naming a job that ended without settling them (a crash) are let go.
    await copies.dropFailed();
    const swept = await copies.sweepBatches();
    if (swept > 0) logger.info({ swept }, 'dropped batched chunks whose copy job is gone');
    let missing = 0;
    let queued = 0;
    let cursor: string | undefined;
    do {
      check();
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
          check,
        );
      }
    } while (cursor);
    // Members of the missing set that no entry references any more (or that are present) leave it.
    for await (const ids of mirror.chunks.scanMissing()) {
      check();
      if (ids.length > 0) await mirror.chunks.reconcile(ids, token);
    }
    // Failure records of chunks that were deleted (or copied) since they failed are dropped.
    for await (const ids of mirror.chunks.scanFailing()) {
      check();
      if (ids.length > 0) await mirror.chunks.reconcile(ids, token);
    }
    const ms = Date.now() - started;
    await mirror.chunks.reconcile([], token, { at: Date.now(), ms, missing, queued, passes: this.passes + 1, full: 1 });
    this.#lastFull = started;
    metrics.reconcilePasses.inc({ region });
    metrics.reconcileQueued.inc({ region }, queued);
    if (queued > 0 || missing > 0) logger.info({ missing, queued, ms }, 'reconcile pass: queued copies of missing chunks');
    return { missing, queued };
  }

  /** Nothing missing, nothing failing, and a full walk recent and later than the last resync. */
  async #idle(): Promise<boolean> {
    const last = this.#lastFull;
    if (last === undefined || Date.now() - last >= this.#o.fullEveryMs) return false;
    const { missing, failing } = await this.#o.mirror.chunks.outstanding();
    if (missing > 0 || failing > 0) return false;
    const resync = await this.#o.mirror.resyncState();
    return resync?.finished === undefined || resync.finished < last;
  }

  /** Queue `requests`, waiting for room in the backlog as often as needed. */
  async #queue(requests: CopyRequest[], check: () => void): Promise<number> {
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
        check();
        await new Promise((resolve) => setTimeout(resolve, this.#o.pollMs ?? 500));
        check();
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
