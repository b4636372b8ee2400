import { randomBytes } from 'node:crypto';
import { type CacheNodeClient, planWarmup, residency, type WarmPlacement } from '@ferry/cache';
import { ConflictError, type Entry, InvalidArgumentError, type Logger, NotFoundError, normalizePath, UnavailableError } from '@ferry/core';
import { parseFillJob, toJobError, WarmQueue } from '@ferry/jobs';
import type { CacheMember, Membership, Meta, MirrorMeta, RedisClient } from '@ferry/meta';
import type { WarmupQueued, WarmupState } from '@ferry/region';
import { DelayedError, type Job } from 'bullmq';
import type { FastifyInstance } from 'fastify';

/** Paths one request may name. */
const MAX_PATHS = 1_000;

export interface WarmFlowsOptions {
  /** The region's Redis (BullMQ copies what it needs; not owned). */
  redis: RedisClient;
  volume: string;
  /** The region's own metadata (paths are resolved there). */
  meta: Meta;
  /** In a mirror: the present set, so a warmup is ready only once the region holds every chunk. */
  mirror?: MirrorMeta;
  membership: Membership;
  client: CacheNodeClient;
  replicas: number;
  /** Attempts of a fill child once it no longer waits for the copy (default 5). */
  attempts?: number;
  logger: Logger;
}

/**
 * Warmups as BullMQ flows in the region's Redis (see WarmQueue): the paths are planned on the live
 * members like a direct warmup (planWarmup), one fill job per placement, which the warm workers of
 * every replica process; the state of a warmup is its jobs' counts and the residency the nodes
 * report now.
 */
export class WarmFlows {
  readonly #queue: WarmQueue;
  readonly #o: WarmFlowsOptions;

  constructor(options: WarmFlowsOptions) {
    this.#o = options;
    this.#queue = new WarmQueue({
      connection: options.redis,
      volume: options.volume,
      onError: (err) => options.logger.debug({ err }, 'warm queue connection error'),
    });
  }

  get queue() {
    return this.#queue.queue;
  }

  async #entries(paths: readonly string[]): Promise<Entry[]> {
    const entries: Entry[] = [];
    for (const path of paths) for (const entry of await this.#o.meta.filesUnder(path)) entries.push(entry);
    return entries;
  }

  /** Queue a warmup of `paths`; returns the parent job id and how many chunks and placements it covers. */
  async request(rawPaths: unknown): Promise<WarmupQueued> {
    if (!Array.isArray(rawPaths) || rawPaths.length === 0 || rawPaths.length > MAX_PATHS || !rawPaths.every((p) => typeof p === 'string')) {
      throw new InvalidArgumentError(`paths: expected 1-${MAX_PATHS} path strings`);
    }
    const paths = [...new Set((rawPaths as string[]).map((p) => normalizePath(p)))];
    const entries = await this.#entries(paths);
    return this.enqueue({ id: `w-${randomBytes(8).toString('hex')}`, paths, entries, replicas: this.#o.replicas });
  }

  /**
   * Queue warmup `id` of `entries` (shown as `paths`) with `replicas` owners per chunk. An id
   * that is already queued is left as it is (a warm rule queues each change under an id of its
   * own, so looking at a change twice queues it once).
   */
  async enqueue(options: { id: string; paths: string[]; entries: Entry[]; replicas: number; rule?: string }): Promise<WarmupQueued> {
    const members = await this.#o.membership.members();
    if (members.length === 0) throw new UnavailableError('no live cache nodes in this region');
    const plan = planWarmup({ entries: options.entries, members, replicas: options.replicas });
    const figures = { id: options.id, chunks: plan.chunks.length, placements: plan.placements.length };
    if (await this.#queue.get(options.id)) return figures;
    await this.#queue.add({
      id: options.id,
      paths: options.paths,
      groups: fillGroups(options.entries, plan.placements),
      ...(options.replicas !== this.#o.replicas ? { replicas: options.replicas } : {}),
      ...(options.rule !== undefined ? { rule: options.rule } : {}),
      ...(this.#o.attempts ? { attempts: this.#o.attempts } : {}),
    });
    return figures;
  }

  /** A warmup's state and its verified residency, or undefined for an unknown id. */
  async state(id: string): Promise<WarmupState | undefined> {
    const record = await this.#queue.get(id);
    if (!record) return undefined;
    const entries = await this.#entries(record.data.paths).catch((err) => {
      if (err instanceof NotFoundError) return [];
      throw err;
    });
    const members = await this.#o.membership.members();
    const replicas = record.data.replicas ?? this.#o.replicas;
    const chunkIds = planWarmup({ entries, members: [], replicas }).chunks.map((c) => c.id);
    const [res, missing] = await Promise.all([
      residency({ members, replicas, chunkIds, client: this.#o.client }),
      this.#o.mirror ? this.#o.mirror.missing(chunkIds).then((ids) => ids.length) : 0,
    ]);
    const complete = res.percent === 100;
    return {
      id,
      state: record.state,
      paths: record.data.paths,
      requestedAt: record.data.requestedAt,
      ...(record.finishedOn ? { finishedOn: record.finishedOn } : {}),
      replicas,
      ...(record.data.rule !== undefined ? { rule: record.data.rule } : {}),
      children: record.children,
      residency: res,
      missing,
      complete,
      // No entries: the paths are gone, or (a rule's warmup in a mirror) not applied here yet.
      ready: complete && missing === 0 && entries.length > 0,
      finished: record.state === 'completed' || record.state === 'failed',
    };
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}

/**
 * The placements of a plan split per file, in the plan's order: first every file's first chunk
 * (the safetensors headers readers need first), then the rest of each file, one group per file.
 */
export function fillGroups(entries: readonly Entry[], placements: readonly WarmPlacement[]): WarmPlacement[][] {
  const byChunk = new Map<string, WarmPlacement[]>();
  for (const p of placements) byChunk.set(p.chunk, [...(byChunk.get(p.chunk) ?? []), p]);
  const taken = new Set<string>();
  const take = (ids: readonly string[]) =>
    ids.flatMap((chunk) => {
      if (taken.has(chunk)) return [];
      taken.add(chunk);
      return byChunk.get(chunk) ?? [];
    });
  const firsts = take(entries.flatMap((e) => e.chunks.slice(0, 1).map((c) => c.id)));
  const rest = entries.map((e) => take(e.chunks.slice(1).map((c) => c.id)));
  return [firsts, ...rest].filter((group) => group.length > 0);
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
  const process = async (job: Job, token?: string): Promise<unknown> => {
    // A split warmup's gate: once it runs, the parent may finish with its other children.
    if (job.name === 'gate') return { gate: true };
    if (job.name === 'warmup') {
      const counts = await job.getDependenciesCount({ processed: true, ignored: true });
      return { processed: counts.processed ?? 0, failed: counts.ignored ?? 0 };
    }
    if (job.name !== 'fill') throw new InvalidArgumentError(`unknown warm job ${job.name}`);
    const data = parseFillJob(job.data);
    const chunk = { id: data.chunk, size: data.size };
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
  return async (job: Job, token?: string): Promise<unknown> => {
    try {
      return await process(job, token);
    } catch (err) {
      throw toJobError(err);
    }
  };
}

/** POST /warmup (admin) and GET /warmup/:id (read) on the control API; errors go to the API's error handler. */
export function warmupRoutes(flows: () => WarmFlows | undefined): (app: FastifyInstance) => void {
  const flowsOrRefuse = (): WarmFlows => {
    const f = flows();
    if (!f) throw new ConflictError('this region has no cache nodes configured (set cache.writeToken)');
    return f;
  };
  return (app) => {
    app.post('/warmup', { config: { auth: 'admin' } }, async (req, reply) => {
      const queued = await flowsOrRefuse().request((req.body as { paths?: unknown } | undefined)?.paths);
      return reply.code(202).send(queued);
    });
    app.get('/warmup/:id', { config: { auth: 'read' } }, async (req) => {
      const state = await flowsOrRefuse().state((req.params as { id: string }).id);
      if (!state) throw new NotFoundError('no such warmup');
      return state;
    });
  };
}
