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
  /**
   * Errors the queue's connection reports (BullMQ prints them to stderr when nobody listens).
   * Default: ignored, since every command on that connection fails with its own error too.
   */
  onError?: (err: Error) => void;
}

/**
 * Producer side of the copy queue. Jobs are keyed by chunk id, so asking twice for the same
 * chunk (a replayed change, a reader's backfill) queues it once.
 */
export class CopyQueue {
  readonly queue: Queue<CopyJob>;
  readonly #attempts: number;

  constructor(options: CopyQueueOptions) {
    this.queue = new Queue<CopyJob>(QUEUES.copy, { connection: options.connection, prefix: queuePrefix(options.volume) });
    this.queue.on('error', options.onError ?? (() => {}));
    this.#attempts = options.attempts ?? 8;
  }

  async enqueue(requests: CopyRequest[]): Promise<void> {
    if (requests.length === 0) return;
    const seen = new Set<string>();
    const jobs = [];
    for (const { first, ...data } of requests) {
      if (seen.has(data.chunk)) continue;
      seen.add(data.chunk);
      jobs.push({
        name: 'copy',
        data,
        opts: {
          jobId: data.chunk,
          priority: first ? PRIORITY.firstChunk : PRIORITY.chunk,
          attempts: this.#attempts,
          backoff: { type: 'exponential', delay: 500 },
          // Completed jobs are forgotten (the present set is the record); failures stay visible.
          removeOnComplete: true,
          removeOnFail: false,
        },
      });
    }
    for (let i = 0; i < jobs.length; i += 1000) await this.queue.addBulk(jobs.slice(i, i + 1000));
  }

  /** Put permanently failed jobs back in line; returns how many. */
  async retryFailed(): Promise<number> {
    const failed = await this.queue.getFailedCount();
    if (failed > 0) await this.queue.retryJobs({ state: 'failed', count: 1000 });
    return failed;
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
