import type { Readable } from 'node:stream';
import {
  type ChunkId,
  CorruptError,
  chunkKey,
  chunkSha256,
  forEachLimit,
  isFerryError,
  type Logger,
  messageOf,
  NotFoundError,
  TransientError,
} from '@ferry/core';
import { chunkBuffer, hashedChunkVerifier, type KnownHashes, openOriginRead, readBounded, recycle, verifyHashedChunk } from '@ferry/fetch';
import { COPY_BATCH, COPY_JOB, type CopyJob, isPermanentFailure, parseCopyBatchJob, parseCopyJob, toJobError } from '@ferry/jobs';
import type { CopyFailure } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import type { Metrics } from './metrics.js';
import type { Throttle } from './throttle.js';

/** What the copy worker needs to know and record about the region's chunks. */
export interface ChunkPresence {
  isPresent(id: ChunkId): Promise<boolean>;
  /** Of these chunks, the ones the region's store does not hold yet. */
  missing(ids: readonly ChunkId[]): Promise<ChunkId[]>;
  /** False when garbage collection claimed the chunk, or deleted it at or after `since`. */
  markPresent(id: ChunkId, options?: { since?: number; copied?: number }): Promise<boolean>;
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

/** Chunks up to this size are copied through one reused buffer; larger ones stream. */
const WHOLE_CHUNK_MAX = 16 * 2 ** 20;
/** Chunk buffers from this size on are given back for reuse after a copy. */
const REUSE_FROM = 2 ** 20;

export type CopyOutcome = 'copied' | 'present' | 'found' | 'unreferenced';

/**
 * Copies one chunk. `known`: what a batch looked up for all its chunks at once (whether this one
 * is present, and the metadata's time before that look), instead of two round trips per chunk.
 */
export type CopyProcessor = (data: unknown, known?: { present: boolean; since: number }) => Promise<CopyOutcome>;

/**
 * Copy one chunk into the region store: streamed from the source (or the origin object of an
 * external chunk), verified on the way (sha256 for native ids, length for external ones) and
 * stored only if the bytes are right — the verifying stream fails the put before it commits.
 * Idempotent: a chunk already present is not copied again, and neither is one the store already
 * holds (HEAD, same size: stores write objects whole, and only verified bytes under a chunk's
 * key), which is what makes a mirror whose Redis lost its state recover without copying the
 * volume across clouds again.
 */
export function createCopyProcessor(options: CopyProcessorOptions): CopyProcessor {
  const { region, source, target, presence, metrics, logger } = options;
  /** A corrupt chunk is counted and logged before its error goes on. */
  const refused =
    (chunk: ChunkId) =>
    (err: unknown): never => {
      if (err instanceof CorruptError) {
        metrics.corruptChunks.inc({ region });
        logger.error({ err, chunk }, 'refused a corrupt chunk; it was not stored');
      }
      throw err;
    };
  const copied = async (job: CopyJob, since: number): Promise<CopyOutcome> => {
    if (!(await presence.markPresent(job.chunk, { since, copied: job.size }))) throw collecting(job.chunk);
    metrics.chunksCopied.inc({ region });
    metrics.bytesCopied.inc({ region }, job.size);
    return 'copied';
  };
  /**
   * A chunk is read whole into one buffer (in place, from a file store), checked and written
   * from memory, and the buffer is reused for the next chunk: no stream pipeline, whose set-up
   * costs more than a small copy (a mirror of 20,000 small imported files spent 6 % of its CPU on
   * pipelines and their abort signals), and no garbage per piece of a large one (a copy of 2 GiB
   * in streamed 1 MiB pieces spent 9 % of the replicator's CPU collecting them). Memory stays
   * concurrency × chunk size.
   */
  const copyWhole = async (job: CopyJob, since: number): Promise<CopyOutcome> => {
    const into = chunkBuffer(job.size);
    const where = job.origin ? job.origin.store : 'the source';
    try {
      let bytes: Buffer;
      try {
        // One byte over the size already fails the check below (readBounded stops there).
        bytes = await readBounded(await openSource(job, source, options.originStore, into), job.size, into);
      } catch (err) {
        if (err instanceof NotFoundError && !(await presence.isReferenced(job.chunk))) return 'unreferenced';
        throw err;
      }
      await options.throttle?.take(job.size);
      const sha256 = await verifyHashedChunk({ id: job.chunk, size: job.size }, bytes, where, {
        ...(options.hashes ? { hashes: options.hashes } : {}),
        establish: job.origin !== undefined,
      }).catch(refused(job.chunk));
      await target.put(chunkKey(job.chunk), bytes, sha256 ? { sha256 } : {});
    } finally {
      // Stores keep no reference to a put's bytes once it settles (their contract); tiny buffers
      // of every size are not worth keeping.
      if (into.length >= REUSE_FROM) recycle(into);
    }
    return copied(job, since);
  };
  return async (data, known) => {
    const job = parseCopyJob(data);
    if (known ? known.present : await presence.isPresent(job.chunk)) return 'present';
    const since = known?.since ?? (await presence.serverTime());
    if (await inStore(target, job)) {
      if (!(await presence.markPresent(job.chunk, { since }))) throw collecting(job.chunk);
      metrics.chunksFound.inc({ region });
      return 'found';
    }
    if (job.size <= WHOLE_CHUNK_MAX) return copyWhole(job, since);
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
      await target.put(chunkKey(job.chunk), { stream: throttled.pipe(verify), length: job.size }, chunkSha256(job.chunk));
    } catch (err) {
      verify.destroy();
      body.destroy();
      refused(job.chunk)(err);
    }
    return copied(job, since);
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
 * next pass, so a source that was repaired converges without a person. A batch job copies its
 * chunks a few at a time and records each failure with its chunk; it fails (and is retried,
 * its copied chunks found present) when any chunk failed, permanently only when all of those did.
 */
export function copyJobHandler(
  process: CopyProcessor,
  presence: ChunkPresence,
  logger: Logger,
  /** True once the worker is closing: a batch starts no more chunks, and its job goes back to be retried. */
  stopping: () => boolean = () => false,
  /** Chunks of one batch copied at once (default: all of them). */
  batchConcurrency: number = BATCH_CONCURRENCY,
): (job: { name?: string; data: unknown; attemptsMade: number }) => Promise<CopyOutcome | CopyOutcome[]> {
  const attempt = async (data: unknown, attemptsMade: number, known?: { present: boolean; since: number }): Promise<CopyOutcome> => {
    try {
      return await process(data, known);
    } catch (err) {
      const chunk = (data as Partial<CopyJob> | undefined)?.chunk;
      if (typeof chunk === 'string') {
        const failure: CopyFailure = {
          chunk: chunk as ChunkId,
          error: messageOf(err),
          code: isFerryError(err) ? err.code : 'OTHER',
          attempts: attemptsMade + 1,
          at: Date.now(),
          request: { ...(data as CopyJob) },
        };
        await presence
          .recordCopyFailure(failure)
          .catch((recordErr: unknown) => logger.warn({ err: recordErr }, 'could not record a copy failure'));
      }
      throw err;
    }
  };
  return async (job) => {
    if (job.name !== COPY_JOB.batch) {
      try {
        return await attempt(job.data, job.attemptsMade);
      } catch (err) {
        throw toJobError(err);
      }
    }
    const { chunks } = parseCopyBatchJob(job.data);
    // Taken before the look at the present set, as a single copy takes it before its own look.
    const since = await presence.serverTime();
    const missing = new Set(await presence.missing(chunks.map((c) => c.chunk)));
    const outcomes: CopyOutcome[] = [];
    const failures: unknown[] = [];
    await forEachLimit(chunks, batchConcurrency, async (chunk, i) => {
      if (stopping()) {
        failures.push(new TransientError('the replicator is stopping; the rest of the batch is copied when a replicator takes it up'));
        return;
      }
      try {
        outcomes[i] = await attempt(chunk, job.attemptsMade, { present: !missing.has(chunk.chunk), since });
      } catch (err) {
        failures.push(err);
      }
    });
    if (failures.length === 0) return outcomes;
    const [first] = failures;
    const all = failures.every(isPermanentFailure);
    const message = `${failures.length} of ${chunks.length} chunks of the batch failed, the first: ${messageOf(first)}`;
    throw all ? toJobError(Object.assign(first as Error, { message })) : new TransientError(message, { cause: first });
  };
}

/**
 * Chunks of one batch job copied at once: all of them (a batch is at most COPY_BATCH, a few
 * MiB), so their writes share the target store's flushes and their marks one round trip to Redis.
 */
const BATCH_CONCURRENCY = COPY_BATCH.chunks;

/**
 * The same under a bandwidth limit (`copy.bytesPerSecond`): the limit sets the pace, and a stop
 * waits only for the chunks already started, so few are started at once.
 */
export const THROTTLED_BATCH_CONCURRENCY = 4;

async function openSource(
  job: CopyJob,
  source: ObjectStore,
  originStore?: (url: string) => ObjectStore,
  into?: Uint8Array,
): Promise<Readable> {
  if (!job.origin) return (await source.get(chunkKey(job.chunk), into ? { into } : {})).body;
  if (!originStore) throw new NotFoundError(`chunk ${job.chunk}: no way to open origin ${job.origin.store}`);
  return openOriginRead(originStore, job.origin, job.size, into);
}
