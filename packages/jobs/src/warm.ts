import type { RedisClient } from '@ferry/meta';
import { FlowProducer, type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { type FillJob, parseFillJob, type WarmupJob, warmJobNodeToken } from './payloads.js';
import { QUEUES, queuePrefix } from './queues.js';

export interface WarmQueueOptions {
  connection: RedisClient;
  volume: string;
  onError?: (err: Error) => void;
}

export interface WarmupRecord {
  id: string;
  state: string;
  data: WarmupJob;
  finishedOn?: number;
  /** Fill children: done, waiting or running, failed for good (ignored by the parent). */
  children: { processed: number; pending: number; failed: number };
}

/**
 * Producer side of the `warm` queue: one `warmup` parent per request and one `fill` child per
 * chunk × owner, added as one BullMQ flow. Child ids carry the request id: BullMQ does not attach
 * an existing job to a second parent (that parent would wait for it forever), so overlapping
 * warmups of the same chunks get their own fill jobs.
 */
export class WarmQueue {
  readonly queue: Queue;
  readonly #producer: FlowProducer;

  constructor(options: WarmQueueOptions) {
    const prefix = queuePrefix(options.volume);
    this.queue = new Queue(QUEUES.warm, { connection: options.connection, prefix });
    this.#producer = new FlowProducer({ connection: options.connection, prefix });
    const onError = options.onError ?? (() => {});
    this.queue.on('error', onError);
    this.#producer.on('error', onError);
  }

  /** Queue warmup `id` of `paths` as one flow of `fills` (`replicas` and `rule` are recorded with it). */
  async add(options: {
    id: string;
    paths: string[];
    fills: readonly FillJob[];
    attempts?: number;
    replicas?: number;
    rule?: string;
  }): Promise<void> {
    for (const fill of options.fills) parseFillJob(fill);
    const children = options.fills.map((fill) => ({
      name: 'fill',
      queueName: QUEUES.warm,
      data: fill,
      opts: {
        jobId: `${fill.chunk}.${warmJobNodeToken(fill.node)}.${options.id}`,
        attempts: options.attempts ?? 5,
        backoff: { type: 'exponential', delay: 1000 },
        // A placement that cannot be filled is reported, and the rest of the flow still completes.
        ignoreDependencyOnFailure: true,
        removeOnComplete: true,
        removeOnFail: { age: 24 * 3600 },
      },
    }));
    const data: WarmupJob = {
      paths: options.paths,
      requestedAt: Date.now(),
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      ...(options.rule !== undefined ? { rule: options.rule } : {}),
    };
    await this.#producer.add({
      name: 'warmup',
      queueName: QUEUES.warm,
      data,
      opts: { jobId: options.id, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 7 * 24 * 3600 } },
      children,
    });
  }

  /** A warmup's job state and its children's counts, or undefined for an unknown id. */
  async get(id: string): Promise<WarmupRecord | undefined> {
    const job = (await this.queue.getJob(id)) as Job<WarmupJob> | undefined;
    if (job?.name !== 'warmup') return undefined;
    const [state, counts] = await Promise.all([
      job.getState(),
      job.getDependenciesCount({ processed: true, unprocessed: true, ignored: true, failed: true }),
    ]);
    return {
      id,
      state,
      data: job.data,
      ...(job.finishedOn ? { finishedOn: job.finishedOn } : {}),
      children: {
        processed: counts.processed ?? 0,
        pending: counts.unprocessed ?? 0,
        failed: (counts.ignored ?? 0) + (counts.failed ?? 0),
      },
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#producer.close(), this.queue.close()]);
  }
}
