import { queuePrefix, type RedisClient } from '@ferry/meta';
import { Queue } from 'bullmq';
import type { CopyJob } from './payloads.js';

/** Queue names; one set per volume and region (each region's queues live in its own Redis). */
export const QUEUES = { copy: 'copy', warm: 'warm' } as const;

export { queuePrefix };

/** Priorities (1 is served first): a file's first chunk holds the safetensors header readers need first. */
export const PRIORITY = { firstChunk: 1, chunk: 10, backfill: 5 } as const;

export interface CopyRequest extends CopyJob {
  /** True for the first chunk of a file. */
  first: boolean;
}

export interface CopyQueueOptions {
  connection: RedisClient;
  volume: string;
  attempts?: number;
  /** Most jobs the queue holds at once (default 10,000); producers that ask `ifRoom` add no more. */
  backlog?: number;
  /**
   * Errors the queue's connection reports (BullMQ prints them to stderr when nobody listens).
   * Default: ignored, since every command on that connection fails with its own error too.
   */
  onError?: (err: Error) => void;
}

/** What `enqueue` did. */
export interface EnqueueResult {
  /** Jobs added (new, or replacing a failed job of the same chunk). */
  queued: number;
  /** Requests whose chunk already had a job waiting, running or retrying. */
  alreadyQueued: number;
  /** Requests left out because the backlog was full (`ifRoom`); the reconciler finds them again. */
  deferred: number;
}

/** Job states that hold a job in the queue (completed jobs are removed at once). */
const HELD_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'waiting-children', 'failed'] as const;

/**
 * Producer side of the copy queue. Jobs are keyed by chunk id, so asking twice for the same
 * chunk (a replayed change, a reader's backfill) queues it once while it waits or runs. A failed
 * job does not stay in the way: failed jobs are removed when they give up (the failure is
 * recorded in the mirror's metadata instead), and a failed job still there from before is
 * replaced by the next request for its chunk. The queue holds at most `backlog` jobs for
 * producers that pass `ifRoom` (the watcher and its reconciler, readers' backfills); the rest is
 * deferred to the reconciler's next pass.
 */
export class CopyQueue {
  readonly queue: Queue<CopyJob>;
  readonly backlog: number;
  readonly #attempts: number;
  readonly #redis: RedisClient;
  /** One enqueue at a time per process, so two producers of one process cannot overfill the backlog. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: CopyQueueOptions) {
    this.queue = new Queue<CopyJob>(QUEUES.copy, { connection: options.connection, prefix: queuePrefix(options.volume) });
    this.queue.on('error', options.onError ?? (() => {}));
    this.#attempts = options.attempts ?? 8;
    this.#redis = options.connection;
    this.backlog = options.backlog ?? 10_000;
  }

  /** Jobs the queue holds now: waiting, prioritized, running, retrying (delayed) or failed. */
  async held(): Promise<number> {
    const counts = await this.queue.getJobCounts(...HELD_STATES);
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  /** Add copy jobs (one per chunk); with `ifRoom`, no more than the backlog has room for. */
  enqueue(requests: CopyRequest[], options: { ifRoom?: boolean } = {}): Promise<EnqueueResult> {
    const run = this.#turn.then(() => this.#enqueue(requests, options.ifRoom ?? false));
    this.#turn = run.catch(() => {});
    return run;
  }

  async #enqueue(requests: CopyRequest[], ifRoom: boolean): Promise<EnqueueResult> {
    const result: EnqueueResult = { queued: 0, alreadyQueued: 0, deferred: 0 };
    const unique = new Map<string, CopyRequest>();
    for (const r of requests) {
      const known = unique.get(r.chunk);
      if (known) known.first ||= r.first;
      else unique.set(r.chunk, { ...r });
    }
    if (unique.size === 0) return result;
    let room = ifRoom ? Math.max(0, this.backlog - (await this.held())) : Number.POSITIVE_INFINITY;
    const all = [...unique.values()];
    for (let i = 0; i < all.length; i += 1000) {
      const slice = all.slice(i, i + 1000);
      const states = await this.#states(slice.map((r) => r.chunk));
      const jobs = [];
      for (const [j, request] of slice.entries()) {
        const state = states[j];
        if (state === 'held') {
          result.alreadyQueued += 1;
          continue;
        }
        if (room <= 0) {
          result.deferred += 1;
          continue;
        }
        // BullMQ ignores an add whose id exists: a failed job must go before its chunk can be queued again.
        if (state === 'failed') await this.queue.remove(request.chunk);
        room -= 1;
        jobs.push(this.#job(request));
      }
      if (jobs.length > 0) await this.queue.addBulk(jobs);
      result.queued += jobs.length;
    }
    return result;
  }

  /** For each chunk: no job, a job that failed, or a job waiting, running or retrying. */
  async #states(chunks: string[]): Promise<Array<'none' | 'failed' | 'held'>> {
    const pipeline = this.#redis.pipeline();
    for (const chunk of chunks) pipeline.exists(this.queue.toKey(chunk)).zscore(this.queue.keys.failed as string, chunk);
    const replies = (await pipeline.exec()) ?? [];
    return chunks.map((_, i) => {
      const [existsErr, exists] = replies[2 * i] ?? [];
      const [failedErr, failed] = replies[2 * i + 1] ?? [];
      if (existsErr) throw existsErr;
      if (failedErr) throw failedErr;
      if (Number(exists) === 0) return 'none';
      return failed === null || failed === undefined ? 'held' : 'failed';
    });
  }

  #job({ first, ...data }: CopyRequest) {
    return {
      name: 'copy',
      data,
      opts: {
        jobId: data.chunk,
        priority: first ? PRIORITY.firstChunk : PRIORITY.chunk,
        attempts: this.#attempts,
        backoff: { type: 'exponential', delay: 500 },
        // Completed jobs are forgotten (the present set is the record). A job that gave up is
        // removed too: its failure is recorded in the mirror's metadata, shown by status, and the
        // reconciler queues the chunk again on its next pass.
        removeOnComplete: true,
        removeOnFail: true,
      },
    };
  }

  /** Failed jobs left from before failures were removed: drop them (their chunks are queued again by the next request). */
  async dropFailed(): Promise<number> {
    return (await this.queue.clean(0, 10_000, 'failed')).length;
  }

  /** Put failed jobs that are still in the queue back in line; returns how many. */
  async retryFailed(): Promise<number> {
    const failed = await this.queue.getFailedCount();
    if (failed > 0) await this.queue.retryJobs({ state: 'failed', count: 1000 });
    return failed;
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
