import { createHash } from 'node:crypto';
import { copyBatchesKey, JobBatches, JobProbe, queuePrefix, type RedisClient } from '@ferry/meta';
import { Queue } from 'bullmq';
import { BATCH_CHUNK_MAX, COPY_BATCH, type CopyBatchJob, type CopyJob } from './payloads.js';

/** Queue names; one set per volume and region (each region's queues live in its own Redis). */
export const QUEUES = { copy: 'copy', warm: 'warm' } as const;

export { queuePrefix };

/** Job names on the copy queue. */
export const COPY_JOB = { one: 'copy', batch: 'copy-batch' } as const;

/** Priorities (1 is served first): a file's first chunk holds the safetensors header readers need first. */
export const PRIORITY = { firstChunk: 1, chunk: 10, backfill: 5 } as const;

export interface CopyRequest extends CopyJob {
  /** True for the first chunk of a file. */
  first: boolean;
}

export interface CopyQueueOptions {
  connection: RedisClient;
  volume: string;
  /** Attempts of one job (`copy.attempts`). */
  attempts: number;
  /** Most jobs the queue holds at once (`copy.backlog`); producers that ask `ifRoom` add no more. */
  backlog: number;
  /**
   * Errors the queue's connection reports (BullMQ prints them to stderr when nobody listens).
   * Default: ignored, since every command on that connection fails with its own error too.
   */
  onError?: (err: Error) => void;
}

/** What `enqueue` did. */
export interface EnqueueResult {
  /** Chunks queued in jobs added (new, or replacing a failed job of the same chunk); small chunks share jobs. */
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
  readonly queue: Queue<CopyJob | CopyBatchJob>;
  readonly backlog: number;
  readonly #attempts: number;
  readonly #probe: JobProbe;
  readonly #batches: JobBatches;
  /** One enqueue at a time per process, so two producers of one process cannot overfill the backlog. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: CopyQueueOptions) {
    this.queue = new Queue<CopyJob | CopyBatchJob>(QUEUES.copy, { connection: options.connection, prefix: queuePrefix(options.volume) });
    this.queue.on('error', options.onError ?? (() => {}));
    this.#attempts = options.attempts;
    this.backlog = options.backlog;
    const batchesKey = copyBatchesKey(options.volume);
    this.#batches = new JobBatches({ redis: options.connection, key: batchesKey });
    this.#probe = new JobProbe({
      redis: options.connection,
      jobKey: (id) => this.queue.toKey(id),
      failedKey: this.queue.keys.failed as string,
      batchesKey,
    });
  }

  /** Jobs the queue holds now: waiting, prioritized, running, retrying (delayed) or failed. */
  async held(): Promise<number> {
    const counts = await this.queue.getJobCounts(...HELD_STATES);
    return Object.values(counts).reduce((a, b) => a + b, 0);
  }

  /**
   * Add copy jobs: one per chunk over BATCH_CHUNK_MAX, one per group of smaller chunks
   * (COPY_BATCH); with `ifRoom`, no more jobs than the backlog has room for.
   */
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
      const wanted: Array<{ request: CopyRequest; failed: boolean }> = [];
      for (const [j, request] of slice.entries()) {
        if (states[j] === 'held') result.alreadyQueued += 1;
        else wanted.push({ request, failed: states[j] === 'failed' });
      }
      const jobs = [];
      for (const group of jobGroups(wanted)) {
        if (room <= 0) {
          result.deferred += group.length;
          continue;
        }
        // BullMQ ignores an add whose id exists: a failed job must go before its chunk can be queued again.
        for (const { request, failed } of group) if (failed) await this.queue.remove(request.chunk);
        room -= 1;
        const [only] = group;
        jobs.push(group.length === 1 && only ? this.#job(only.request) : this.#batchJob(group.map((g) => g.request)));
        result.queued += group.length;
      }
      // Each small chunk names its batch before the job exists: a producer that looks meanwhile
      // finds no such job yet and queues the chunk again, which copies it once and finds it once.
      await this.#batches.name(
        jobs.flatMap((job) => ('chunks' in job.data ? job.data.chunks.map((c) => [c.chunk, job.opts.jobId] as const) : [])),
      );
      if (jobs.length > 0) await this.queue.addBulk(jobs);
    }
    return result;
  }

  /** For each chunk: no job, a job that failed, or a job waiting, running or retrying. */
  #states(chunks: string[]): Promise<Array<'none' | 'failed' | 'held'>> {
    return this.#probe.states(chunks);
  }

  #job({ first, ...data }: CopyRequest) {
    return { name: COPY_JOB.one, data, opts: this.#opts(data.chunk, first) };
  }

  /**
   * One job for small chunks. Its id follows from its chunks, so the same group asked for again
   * while it waits is queued once; a chunk asked for again in another group is copied once and
   * found present by the other job. A first chunk in the group gives it the first chunks' priority.
   */
  #batchJob(requests: CopyRequest[]) {
    const chunks = requests.map(({ first: _first, ...data }) => data);
    const id = `batch-${createHash('sha256')
      .update(chunks.map((c) => c.chunk).join(' '))
      .digest('hex')
      .slice(0, 32)}`;
    return {
      name: COPY_JOB.batch,
      data: { chunks },
      opts: this.#opts(
        id,
        requests.some((r) => r.first),
      ),
    };
  }

  #opts(jobId: string, first: boolean) {
    return {
      jobId,
      priority: first ? PRIORITY.firstChunk : PRIORITY.chunk,
      attempts: this.#attempts,
      backoff: { type: 'exponential', delay: 500 },
      // Completed jobs are forgotten (the present set is the record). A job that gave up is
      // removed too: its failure is recorded in the mirror's metadata, shown by status, and the
      // reconciler queues the chunk again on its next pass.
      removeOnComplete: true,
      removeOnFail: true,
    };
  }

  /** Drop the batched chunks whose job is gone without a settle (a crash at that moment); returns how many. */
  sweepBatches(): Promise<number> {
    return this.#batches.sweep((job) => this.queue.toKey(job));
  }

  /** A batch job ended (done, or failed for good): its chunks no longer name it. */
  async settleBatch(chunks: readonly string[]): Promise<void> {
    await this.#batches.settle(chunks);
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

/**
 * Requests in jobs: a large chunk alone; small chunks (and their failed-job flags) together, up to
 * COPY_BATCH chunks and bytes, in the order given (a folder's files stay together).
 */
function* jobGroups<T extends { request: CopyRequest }>(wanted: T[]): Generator<T[]> {
  let group: T[] = [];
  let bytes = 0;
  for (const item of wanted) {
    if (item.request.size > BATCH_CHUNK_MAX) {
      yield [item];
      continue;
    }
    if (group.length >= COPY_BATCH.chunks || bytes + item.request.size > COPY_BATCH.bytes) {
      yield group;
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += item.request.size;
  }
  if (group.length > 0) yield group;
}
