import { randomBytes } from 'node:crypto';
import {
  type CacheMember,
  type CacheNodeClient,
  type Membership,
  type Residency,
  rendezvousOwners,
  residency,
  type WarmChunk,
  warmOrder,
} from '@ferry/cache';
import { type Entry, InvalidArgumentError, type Logger, NotFoundError, normalizePath, UnavailableError } from '@ferry/core';
import { QUEUES, queuePrefix } from '@ferry/jobs';
import type { Meta, MirrorMeta } from '@ferry/meta';
import { DelayedError, FlowProducer, type Job, Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';

/** Node ids that may go into a BullMQ job id (`${chunk}.${node}.${request}`; BullMQ forbids ':' in custom ids). */
const JOB_NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Paths one request may name. */
const MAX_PATHS = 1_000;

export interface WarmupRequestData {
  paths: string[];
  requestedAt: number;
}

export interface FillJobData {
  chunk: string;
  size: number;
  node: string;
}

export interface WarmFlowsOptions {
  /** The region's Redis (BullMQ copies what it needs; not owned). */
  redis: Redis;
  volume: string;
  /** The region's own metadata (paths are resolved there). */
  meta: Meta;
  membership: Membership;
  client: CacheNodeClient;
  replicas: number;
  /** Attempts of a fill child once it no longer waits for the copy (default 5). */
  attempts?: number;
  logger: Logger;
}

export interface WarmupState {
  id: string;
  state: string;
  paths: string[];
  requestedAt: number;
  finishedOn?: number;
  /** Fill children: processed (done), pending, failed for good. */
  children: { processed: number; pending: number; failed: number };
  /** Verified on the nodes now, not read from job states. */
  residency: Residency;
  /** Residency is 100 %. */
  complete: boolean;
  /** The flow is over (every child done or failed for good and the parent finished). */
  finished: boolean;
}

/**
 * Warmups as BullMQ flows in the region's Redis: one `warmup` parent per request and one `fill`
 * child per chunk × owner (queue `warm`), which the warm workers of every replica process.
 */
export class WarmFlows {
  readonly queue: Queue;
  readonly #producer: FlowProducer;
  readonly #o: WarmFlowsOptions;

  constructor(options: WarmFlowsOptions) {
    this.#o = options;
    const prefix = queuePrefix(options.volume);
    this.queue = new Queue(QUEUES.warm, { connection: options.redis, prefix });
    this.#producer = new FlowProducer({ connection: options.redis, prefix });
    const onError = (err: Error) => options.logger.debug({ err }, 'warm queue connection error');
    this.queue.on('error', onError);
    this.#producer.on('error', onError);
  }

  async #chunks(paths: readonly string[]): Promise<WarmChunk[]> {
    const entries: Entry[] = [];
    for (const path of paths) {
      entries.push(...(await this.#o.meta.filesUnder(path)));
    }
    return warmOrder(entries);
  }

  /** Queue a warmup of `paths`; returns the parent job id and how many chunks and placements it covers. */
  async request(rawPaths: unknown): Promise<{ id: string; chunks: number; placements: number }> {
    if (!Array.isArray(rawPaths) || rawPaths.length === 0 || rawPaths.length > MAX_PATHS || !rawPaths.every((p) => typeof p === 'string')) {
      throw new InvalidArgumentError(`paths: expected 1-${MAX_PATHS} path strings`);
    }
    const paths = [...new Set((rawPaths as string[]).map((p) => normalizePath(p)))];
    const chunks = await this.#chunks(paths);
    const members = await this.#o.membership.members();
    if (members.length === 0) throw new UnavailableError('no live cache nodes in this region');
    for (const m of members) {
      if (!JOB_NODE_ID.test(m.id))
        throw new InvalidArgumentError(`cache node id ${JSON.stringify(m.id)} cannot name a warm job (letters, digits, _ and - only)`);
    }
    // Child ids carry the request id: BullMQ does not attach an existing job to a second parent (that
    // parent would wait for it forever), so overlapping warmups of the same chunks get their own
    // fill jobs; the node's single-flight read-through makes the second fill of a chunk cheap.
    const id = `w-${randomBytes(8).toString('hex')}`;
    const children = chunks.flatMap((c) =>
      rendezvousOwners(members, c.id, this.#o.replicas).map((owner) => ({
        name: 'fill',
        queueName: QUEUES.warm,
        data: { chunk: c.id, size: c.size, node: owner.id } satisfies FillJobData,
        opts: {
          jobId: `${c.id}.${owner.id}.${id}`,
          attempts: this.#o.attempts ?? 5,
          backoff: { type: 'exponential', delay: 1000 },
          // A placement that cannot be filled is reported, and the rest of the flow still completes.
          ignoreDependencyOnFailure: true,
          removeOnComplete: true,
          removeOnFail: { age: 24 * 3600 },
        },
      })),
    );
    const data: WarmupRequestData = { paths, requestedAt: Date.now() };
    const flow = await this.#producer.add({
      name: 'warmup',
      queueName: QUEUES.warm,
      data,
      opts: { jobId: id, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 7 * 24 * 3600 } },
      children,
    });
    return { id: String(flow.job.id), chunks: chunks.length, placements: children.length };
  }

  /** A warmup's state and its verified residency, or undefined for an unknown id. */
  async state(id: string): Promise<WarmupState | undefined> {
    const job = (await this.queue.getJob(id)) as Job<WarmupRequestData> | undefined;
    if (job?.name !== 'warmup') return undefined;
    const [state, counts] = await Promise.all([
      job.getState(),
      job.getDependenciesCount({ processed: true, unprocessed: true, ignored: true, failed: true }),
    ]);
    const chunks = await this.#chunks(job.data.paths).catch((err) => {
      if (err instanceof NotFoundError) return [];
      throw err;
    });
    const members = await this.#o.membership.members();
    const res = await residency({ members, replicas: this.#o.replicas, chunkIds: chunks.map((c) => c.id), client: this.#o.client });
    const failed = (counts.ignored ?? 0) + (counts.failed ?? 0);
    return {
      id,
      state,
      paths: job.data.paths,
      requestedAt: job.data.requestedAt,
      ...(job.finishedOn ? { finishedOn: job.finishedOn } : {}),
      children: { processed: counts.processed ?? 0, pending: counts.unprocessed ?? 0, failed },
      residency: res,
      complete: res.percent === 100,
      finished: state === 'completed' || state === 'failed',
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#producer.close(), this.queue.close()]);
  }
}

export interface WarmProcessorOptions {
  client: CacheNodeClient;
  membership: Membership;
  /** In a mirror: the present set, to warm behind the copy. */
  mirror?: MirrorMeta;
  /** How long a fill child waits for the copy before the node reads through from the source (default 30 min). */
  copyWaitMs?: number;
  /** How often a waiting child looks again (default 1 s). */
  recheckMs?: number;
  logger: Logger;
}

/**
 * The warm worker's processor. A `fill` child asks its node to fill the chunk (the node reads it
 * from the region's store, else the source). In a mirror a chunk not copied yet is not pulled
 * from the source: the child is delayed and looks again, so it lands on its owners right after the
 * copy does; only after `copyWaitMs` does it let the node read through from the source. A
 * `warmup` parent runs once its children are done and reports their counts.
 */
export function createWarmProcessor(options: WarmProcessorOptions) {
  const copyWaitMs = options.copyWaitMs ?? 30 * 60_000;
  const recheckMs = options.recheckMs ?? 1_000;
  let members: { at: number; list: CacheMember[] } | undefined;
  const member = async (id: string): Promise<CacheMember | undefined> => {
    if (!members || Date.now() - members.at > 1_000) members = { at: Date.now(), list: await options.membership.members() };
    return members.list.find((m) => m.id === id);
  };
  return async (job: Job, token?: string): Promise<unknown> => {
    if (job.name === 'warmup') {
      const counts = await job.getDependenciesCount({ processed: true, ignored: true });
      return { processed: counts.processed ?? 0, failed: counts.ignored ?? 0 };
    }
    if (job.name !== 'fill') throw new InvalidArgumentError(`unknown warm job ${job.name}`);
    const data = job.data as FillJobData;
    const chunk = { id: data.chunk as WarmChunk['id'], size: data.size };
    if (options.mirror && Date.now() - job.timestamp < copyWaitMs && !(await options.mirror.isPresent(chunk.id))) {
      // Behind the copy: look again shortly (a delay is not a failed attempt).
      await job.moveToDelayed(Date.now() + recheckMs, token);
      throw new DelayedError();
    }
    const node = await member(data.node);
    if (!node) throw new UnavailableError(`cache node ${data.node} is not a live member`);
    const state = await options.client.fill(node, chunk);
    if (state === 'missing') throw new UnavailableError(`chunk ${chunk.id} is in neither the region's store nor the source`);
    return { state };
  };
}

/** POST /warmup and GET /warmup/:id on the control API. */
export function warmupRoutes(flows: () => WarmFlows | undefined): (app: FastifyInstance) => void {
  return (app) => {
    const unavailable = { error: 'unavailable', message: 'this region has no cache nodes configured (set cache.token)' };
    app.post('/warmup', async (req, reply) => {
      const f = flows();
      if (!f) return reply.code(409).send(unavailable);
      try {
        return reply.code(202).send(await f.request((req.body as { paths?: unknown } | undefined)?.paths));
      } catch (err) {
        if (err instanceof InvalidArgumentError) return reply.code(400).send({ error: 'invalid', message: err.message });
        if (err instanceof NotFoundError) return reply.code(404).send({ error: 'not-found', message: err.message });
        if (err instanceof UnavailableError) return reply.code(503).send({ error: 'unavailable', message: err.message });
        throw err;
      }
    });
    app.get('/warmup/:id', async (req, reply) => {
      const f = flows();
      if (!f) return reply.code(409).send(unavailable);
      const state = await f.state((req.params as { id: string }).id);
      if (!state) return reply.code(404).send({ error: 'not-found', message: 'no such warmup' });
      return state;
    });
  };
}
