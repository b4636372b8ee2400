import type { Readable } from 'node:stream';
import { type ChunkId, CorruptError, chunkKey, isFerryError, type Logger, messageOf, NotFoundError, TransientError } from '@ferry/core';
import { hashedChunkVerifier, type KnownHashes, openOriginRead } from '@ferry/fetch';
import { type CopyJob, parseCopyJob, toJobError } from '@ferry/jobs';
import type { CopyFailure } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import type { Metrics } from './metrics.js';
import type { Throttle } from './throttle.js';

/** What the copy worker needs to know and record about the region's chunks. */
export interface ChunkPresence {
  isPresent(id: ChunkId): Promise<boolean>;
  /** False when garbage collection claimed the chunk, or deleted it at or after `since`. */
  markPresent(id: ChunkId, options?: { since?: number }): Promise<boolean>;
  /** The metadata's clock, ms (`markPresent`'s `since`). */
  serverTime(): Promise<number>;
  /** Whether any entry in this region still references the chunk. */
  isReferenced(id: ChunkId): Promise<boolean>;
  /** Keep the last failure of a chunk's copy visible (status, metrics) until it is copied. */
  recordCopyFailure(failure: CopyFailure): Promise<unknown>;
}

export interface CopyProcessorOptions {
  region: string;
  /** The source region's store (native chunks). */
  source: ObjectStore;
  /** This region's store. */
  target: ObjectStore;
  /** Opens the origin store of an external chunk (imported objects). */
  originStore?: (url: string) => ObjectStore;
  presence: ChunkPresence;
  /** The region's hashes of external chunks: copies are checked against them; a first copy from the origin records one. */
  hashes?: KnownHashes;
  throttle?: Throttle;
  metrics: Metrics;
  logger: Logger;
}

export type CopyOutcome = 'copied' | 'present' | 'found' | 'unreferenced';

/**
 * Copy one chunk into the region store: streamed from the source (or the origin object of an
 * external chunk), verified on the way (sha256 for native ids, length for external ones) and
 * stored only if the bytes are right — the verifying stream fails the put before it commits.
 * Idempotent: a chunk already present is not copied again, and neither is one the store already
 * holds (HEAD, same size: stores write objects whole, and only verified bytes under a chunk's
 * key), which is what makes a mirror whose Redis lost its state recover without copying the
 * volume across clouds again.
 */
export function createCopyProcessor(options: CopyProcessorOptions): (data: unknown) => Promise<CopyOutcome> {
  const { region, source, target, presence, metrics, logger } = options;
  return async (data) => {
    const job = parseCopyJob(data);
    if (await presence.isPresent(job.chunk)) return 'present';
    const since = await presence.serverTime();
    if (await inStore(target, job)) {
      if (!(await presence.markPresent(job.chunk, { since }))) throw collecting(job.chunk);
      metrics.chunksFound.inc({ region });
      return 'found';
    }
    const verify = await hashedChunkVerifier({ id: job.chunk, size: job.size }, job.origin ? job.origin.store : 'the source', {
      ...(options.hashes ? { hashes: options.hashes } : {}),
      establish: job.origin !== undefined,
    });
    let body: Readable;
    try {
      body = await openSource(job, source, options.originStore);
    } catch (err) {
      // A chunk no entry needs any more (deleted at the source, then collected) is not a failure.
      if (err instanceof NotFoundError && !(await presence.isReferenced(job.chunk))) return 'unreferenced';
      throw err;
    }
    const throttled = options.throttle ? body.pipe(options.throttle.stream()) : body;
    if (throttled !== body) body.on('error', (err) => throttled.destroy(err));
    throttled.on('error', (err) => verify.destroy(err));
    // The put reports what went wrong; a put that failed before reading must not leave a later
    // source error without a listener (an uncaught exception).
    verify.on('error', () => {});
    try {
      await target.put(chunkKey(job.chunk), { stream: throttled.pipe(verify), length: job.size });
    } catch (err) {
      verify.destroy();
      body.destroy();
      if (err instanceof CorruptError) {
        metrics.corruptChunks.inc({ region });
        logger.error({ err, chunk: job.chunk }, 'refused a corrupt chunk; it was not stored');
      }
      throw err;
    }
    if (!(await presence.markPresent(job.chunk, { since }))) throw collecting(job.chunk);
    metrics.chunksCopied.inc({ region });
    metrics.bytesCopied.inc({ region }, job.size);
    return 'copied';
  };
}

/** Garbage collection took the chunk while it was found or copied: the next attempt copies it again. */
function collecting(chunk: ChunkId): TransientError {
  return new TransientError(`chunk ${chunk} was being collected while it was copied; it is copied again`);
}

/** Whether the target store already holds the chunk whole; a store that cannot answer fails the attempt. */
async function inStore(target: ObjectStore, job: CopyJob): Promise<boolean> {
  try {
    return (await target.head(chunkKey(job.chunk))).size === job.size;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

/**
 * The BullMQ processor around `process`: a failed attempt is recorded with the chunk (status
 * and metrics show the last error until the chunk is copied), and a permanent failure (a corrupt
 * source chunk, a changed origin) fails the job at once; the reconciler queues it again on its
 * next pass, so a source that was repaired converges without a person.
 */
export function copyJobHandler(
  process: (data: unknown) => Promise<CopyOutcome>,
  presence: ChunkPresence,
  logger: Logger,
): (job: { data: unknown; attemptsMade: number }) => Promise<CopyOutcome> {
  return async (job) => {
    try {
      return await process(job.data);
    } catch (err) {
      const data = job.data as Partial<CopyJob> | undefined;
      if (typeof data?.chunk === 'string') {
        const failure: CopyFailure = {
          chunk: data.chunk as ChunkId,
          error: messageOf(err),
          code: isFerryError(err) ? err.code : 'OTHER',
          attempts: job.attemptsMade + 1,
          at: Date.now(),
          request: { ...data },
        };
        await presence
          .recordCopyFailure(failure)
          .catch((recordErr: unknown) => logger.warn({ err: recordErr }, 'could not record a copy failure'));
      }
      throw toJobError(err);
    }
  };
}

async function openSource(job: CopyJob, source: ObjectStore, originStore?: (url: string) => ObjectStore): Promise<Readable> {
  if (!job.origin) return (await source.get(chunkKey(job.chunk))).body;
  if (!originStore) throw new NotFoundError(`chunk ${job.chunk}: no way to open origin ${job.origin.store}`);
  return openOriginRead(originStore, job.origin, job.size);
}
