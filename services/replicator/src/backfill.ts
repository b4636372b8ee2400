import { type ChunkId, type Entry, type FencedError, isChunkId, type Logger, normalizePath } from '@ferry/core';
import type { CopyQueue, CopyRequest } from '@ferry/jobs';
import type { Meta, MirrorMeta } from '@ferry/meta';
import { LeaderLoop } from './leader-loop.js';
import type { Metrics } from './metrics.js';
import { copyRequests } from './watcher.js';

export interface BackfillOptions {
  region: string;
  /** The region's entries: where a request's chunk is looked up. */
  meta: Meta;
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
 * loop, on the replica that leads, takes them and queues copies. A request comes from a reader,
 * so it only names a chunk and the file it was read for: the copy is made from that file's entry
 * in the region's metadata (size, origin), and only for a chunk the region lacks (the missing
 * set). Anything else is dropped and counted. A full backlog drops the rest: the reconciler finds
 * every missing chunk anyway.
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
    const counts = await queueBackfill(o.meta, o.mirror, o.copies, TAKE);
    const { region, metrics } = o;
    for (const outcome of ['queued', 'skipped', 'invalid'] as const) metrics.backfillRequests.inc({ region, outcome }, counts[outcome]);
    if (counts.invalid > 0) o.logger.warn({ ...counts }, 'dropped backfill requests that are no copy a reader could ask for');
    return counts.taken;
  }
}

/**
 * One step of the backfill: take up to `max` requests from the region's list and queue copies
 * of those whose chunks the region still lacks. A request names a chunk and the file it was read
 * for; everything the copy needs (size, origin) comes from that file's entry in the region's own
 * metadata, never from the request: a reader can ask for a copy, not shape one.
 */
export async function queueBackfill(
  meta: Meta,
  mirror: MirrorMeta,
  copies: CopyQueue,
  max: number,
): Promise<{ taken: number; queued: number; skipped: number; invalid: number }> {
  const taken = await mirror.chunks.takeBackfill(max);
  const asked = taken.map(askedFor);
  const paths = [...new Set(asked.flatMap((a) => (a ? [a.path] : [])))];
  const found = await meta.statMany(paths);
  const entries = new Map<string, Entry | undefined>(paths.map((path, i) => [path, found[i]]));
  const valid = new Map<ChunkId, CopyRequest>();
  let invalid = 0;
  for (const a of asked) {
    const entry = a && entries.get(a.path);
    // The region's own request for that chunk of that file, or none: a chunk the file does not have.
    const request = entry ? copyRequests([entry]).find((r) => r.chunk === a.chunk) : undefined;
    if (request) valid.set(request.chunk, request);
    else if (!a || entry) invalid++;
  }
  const lacking = new Set(await mirror.chunks.whichMissing([...valid.keys()]));
  const requests = [...valid.values()].filter((r) => lacking.has(r.chunk));
  if (requests.length > 0) await copies.enqueue(requests, { ifRoom: true });
  return { taken: taken.length, queued: requests.length, skipped: taken.length - invalid - requests.length, invalid };
}

/** The chunk and file a reader's request names, or undefined when it is no request a reader makes. */
export function askedFor(raw: unknown): { chunk: ChunkId; path: string } | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const { chunk, path } = raw as Record<string, unknown>;
  if (!isChunkId(chunk) || typeof path !== 'string') return undefined;
  try {
    return normalizePath(path) === path ? { chunk, path } : undefined;
  } catch {
    return undefined;
  }
}
