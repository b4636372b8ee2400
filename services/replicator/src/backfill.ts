import { type ChunkId, externalChunkId, type FencedError, isNativeChunkId, type Logger } from '@ferry/core';
import { type CopyQueue, type CopyRequest, parseCopyJob } from '@ferry/jobs';
import type { MirrorMeta } from '@ferry/meta';
import { LeaderLoop } from './leader-loop.js';
import type { Metrics } from './metrics.js';

export interface BackfillOptions {
  region: string;
  mirror: MirrorMeta;
  copies: CopyQueue;
  /** The leading watcher's fencing token ('' while this replica does not lead). */
  token: () => string;
  onFenced: (err: FencedError) => void;
  metrics: Metrics;
  logger: Logger;
  /** Wait between looks at an empty list (default 1 s). */
  everyMs?: number;
}

/** Requests taken from the list per step. */
const TAKE = 500;

/**
 * Readers in a mirror ask for copies of the chunks they had to fetch from outside the region by
 * adding requests to the region's backfill list (the one key their Redis user may write). This
 * loop, on the replica that leads, takes them and queues copies, first of all checking them: a
 * request comes from a reader, so it must be a well-formed copy job, an external chunk's origin
 * must be the one its id was made from, and the chunk must be one this region references and
 * lacks (the missing set). Anything else is dropped and counted. A full backlog drops the rest:
 * the reconciler finds every missing chunk anyway.
 */
export class Backfill extends LeaderLoop {
  constructor(options: BackfillOptions) {
    const everyMs = options.everyMs ?? 1_000;
    super({
      task: 'backfill',
      follow: options.token,
      retry: { periodMs: everyMs },
      step: async () => ((await this.#step(options)) === TAKE ? 0 : everyMs),
      onFenced: (err) => options.onFenced(err),
      logger: options.logger,
    });
  }

  async #step(o: BackfillOptions): Promise<number> {
    const counts = await queueBackfill(o.mirror, o.copies, TAKE);
    const { region, metrics } = o;
    for (const outcome of ['queued', 'skipped', 'invalid'] as const) metrics.backfillRequests.inc({ region, outcome }, counts[outcome]);
    if (counts.invalid > 0) o.logger.warn({ ...counts }, 'dropped backfill requests that are no copy a reader could ask for');
    return counts.taken;
  }
}

/**
 * One step of the backfill: take up to `max` requests from the region's list, check them, and
 * queue copies of those whose chunks the region still lacks.
 */
export async function queueBackfill(
  mirror: MirrorMeta,
  copies: CopyQueue,
  max: number,
): Promise<{ taken: number; queued: number; skipped: number; invalid: number }> {
  const taken = await mirror.chunks.takeBackfill(max);
  const valid = new Map<ChunkId, CopyRequest>();
  for (const raw of taken) {
    const request = checkRequest(raw);
    if (request) valid.set(request.chunk, request);
  }
  const lacking = new Set(await mirror.chunks.whichMissing([...valid.keys()]));
  const requests = [...valid.values()].filter((r) => lacking.has(r.chunk));
  if (requests.length > 0) await copies.enqueue(requests, { ifRoom: true });
  return { taken: taken.length, queued: requests.length, skipped: valid.size - requests.length, invalid: taken.length - valid.size };
}

/** A reader's request as a copy job, or undefined when it is none a reader of this region could make. */
export function checkRequest(raw: unknown): CopyRequest | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const { first, ...job } = raw as Record<string, unknown>;
  let parsed: ReturnType<typeof parseCopyJob>;
  try {
    parsed = parseCopyJob(job);
  } catch {
    return undefined;
  }
  const { origin } = parsed;
  if (isNativeChunkId(parsed.chunk) ? origin !== undefined : origin === undefined) return undefined;
  if (origin && externalChunkId({ ...origin, length: parsed.size }) !== parsed.chunk) return undefined;
  return { ...parsed, first: first === true };
}
