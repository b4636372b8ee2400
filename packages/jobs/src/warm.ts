import type { RedisClient } from '@ferry/meta';
import { FlowProducer, type Job, Queue } from 'bullmq';
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

/** Fill jobs added in one step (one MULTI): small enough that adding them never blocks Redis for long. */
export const FILLS_PER_ADD = 200;

/** Job id of a split warmup's gate: a child that holds the parent open until every group is added. */
function gateId(id: string): string {
  return `${id}.gate`;
}

/**
 * Producer side of the `warm` queue: one `warmup` parent per request and one `fill` child per
 * chunk × owner. Child ids carry the request id: BullMQ does not attach an existing job to a
 * second parent (that parent would wait for it forever), so overlapping warmups of the same
 * chunks get their own fill jobs. The children come in groups (the caller splits them per file),
 * each added in a step of its own: a warmup of a whole volume never becomes one huge flow. While
 * the groups are added, a delayed `gate` child keeps the parent from finishing early; it is
 * promoted after the last group (or runs by itself after 10 minutes if the requester died).
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

  /** Queue warmup `id` of `paths`: the fill groups in order, at most FILLS_PER_ADD fills per step. */
  async add(options: {
    id: string;
    paths: string[];
    groups: readonly (readonly FillJob[])[];
    attempts?: number;
    /** Owners per chunk when not the region's `cache.replicas` (a warm rule's own); recorded with the warmup. */
    replicas?: number;
    /** The warm rule (its path) that queued this warmup; absent for a request. */
    rule?: string;
  }): Promise<void> {
    // Whole groups (files) share a step while they fit; a group larger than a step is cut.
    const steps: FillJob[][] = [];
    let current: FillJob[] = [];
    for (const group of options.groups) {
      for (const fill of group) parseFillJob(fill);
      if (current.length + group.length > FILLS_PER_ADD && current.length > 0) {
        steps.push(current);
        current = [];
      }
      for (let i = 0; i < group.length; i += FILLS_PER_ADD) {
        const part = group.slice(i, i + FILLS_PER_ADD);
        if (current.length + part.length > FILLS_PER_ADD) {
          steps.push(current);
          current = [];
        }
        current.push(...part);
      }
    }
    if (current.length > 0) steps.push(current);
    const child = (fill: FillJob) => ({
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
    });
    const [first = [], ...rest] = steps;
    const split = rest.length > 0;
    const gate = {
      name: 'gate',
      queueName: QUEUES.warm,
      data: {},
      opts: { jobId: gateId(options.id), delay: 10 * 60_000, removeOnComplete: true },
    };
    const data: WarmupJob = {
      paths: options.paths,
      requestedAt: Date.now(),
      ...(split ? { split: true } : {}),
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      ...(options.rule !== undefined ? { rule: options.rule } : {}),
    };
    await this.#producer.add({
      name: 'warmup',
      queueName: QUEUES.warm,
      data,
      opts: { jobId: options.id, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 7 * 24 * 3600 } },
      children: [...first.map(child), ...(split ? [gate] : [])],
    });
    if (!split) return;
    const parent = { id: options.id, queue: this.queue.qualifiedName };
    for (const step of rest) {
      await this.queue.addBulk(
        step.map((fill) => {
          const { opts, ...job } = child(fill);
          return { ...job, opts: { ...opts, parent } };
        }),
      );
    }
    await (await this.queue.getJob(gateId(options.id)))?.promote();
  }

  /** A warmup's job state and its children's counts (its gate not counted), or undefined for an unknown id. */
  async get(id: string): Promise<WarmupRecord | undefined> {
    const job = (await this.queue.getJob(id)) as Job<WarmupJob> | undefined;
    if (job?.name !== 'warmup') return undefined;
    const [state, counts, gate] = await Promise.all([
      job.getState(),
      job.getDependenciesCount({ processed: true, unprocessed: true, ignored: true, failed: true }),
      job.data.split ? this.queue.getJob(gateId(id)) : undefined,
    ]);
    const gateProcessed = job.data.split && gate === undefined ? 1 : 0;
    const gatePending = job.data.split && gate !== undefined ? 1 : 0;
    return {
      id,
      state,
      data: job.data,
      ...(job.finishedOn ? { finishedOn: job.finishedOn } : {}),
      children: {
        processed: (counts.processed ?? 0) - gateProcessed,
        pending: (counts.unprocessed ?? 0) - gatePending,
        failed: (counts.ignored ?? 0) + (counts.failed ?? 0),
      },
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#producer.close(), this.queue.close()]);
  }
}
