import { BufferPool, type ChunkRef, chunkKey, chunkSha256, coalesce, forEachLimit, type NewEntry, NotFoundError } from '@ferry/core';
import type { Meta } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import { chunkFile, type FileChunk, inputSize, isSmall, type PutInput } from './chunking.js';
import type { ChunkHolds } from './holds.js';

export interface StageOptions {
  store: ObjectStore;
  meta: Meta;
  files: readonly PutInput[];
  chunkSize: number;
  /** Chunks uploaded at once; memory is about concurrency × chunkSize. */
  concurrency: number;
  /** Bytes read from the files (progress). */
  onBytes?: (delta: number) => void;
  /** Holds each chunk against garbage collection before it is looked at (a put passes its own). */
  holds?: ChunkHolds;
}

/** What staging did, in numbers. */
export interface StageFigures {
  files: number;
  bytes: number;
  chunks: number;
  chunksUploaded: number;
  chunksPresent: number;
  bytesUploaded: number;
}

export interface Staged extends StageFigures {
  /** One per file, in the order given, ready for `Meta.commit`. */
  entries: NewEntry[];
}

/**
 * Chunk and hash the files and upload the chunks the store lacks; commits nothing. A chunk is
 * known present when the volume references it (a committed entry implies its chunks are in the
 * store) or the store already holds it (left by an earlier, interrupted put); the same chunk met
 * twice in one run is uploaded once. The first failure stops reading and uploading.
 */
export async function stageFiles(options: StageOptions): Promise<Staged> {
  const { store, meta, chunkSize } = options;
  const figures: StageFigures = { files: options.files.length, bytes: 0, chunks: 0, chunksUploaded: 0, chunksPresent: 0, bytesUploaded: 0 };
  const seen = new Set<string>();
  // Looked up together while a lookup is in flight: one round trip for many small files.
  const refCount = coalesce(async (ids: string[]) => meta.refs.refCounts(ids));

  async function ensureChunk(ref: ChunkRef, bytes: Buffer): Promise<boolean> {
    // Held first: what the look below finds stays there until the commit.
    await options.holds?.hold(ref.id);
    if ((await refCount(ref.id)) > 0) return false;
    const key = chunkKey(ref.id);
    try {
      if ((await store.head(key)).size === ref.size) return false;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    await store.put(key, bytes, chunkSha256(ref.id));
    return true;
  }

  const concurrency = Math.max(1, Math.floor(options.concurrency));
  const ahead = 2;
  // Every chunk buffer in use is one of these: uploads in flight plus the chunks read ahead.
  const buffers = new BufferPool({ bufferSize: chunkSize, keep: concurrency + ahead + 1 });
  const entries: NewEntry[] = new Array(options.files.length);

  const stageChunk = async ({ ref, bytes, release }: FileChunk): Promise<void> => {
    try {
      figures.chunks += 1;
      if (seen.has(ref.id)) {
        figures.chunksPresent += 1;
        return;
      }
      seen.add(ref.id);
      if (await ensureChunk(ref, bytes)) {
        figures.chunksUploaded += 1;
        figures.bytesUploaded += ref.size;
      } else figures.chunksPresent += 1;
    } finally {
      release();
    }
  };
  const chunksOf = (index: number): AsyncGenerator<FileChunk> =>
    chunkFile(options.files[index] as PutInput, {
      chunkSize,
      buffers,
      ahead,
      ...(options.onBytes ? { onBytes: options.onBytes } : {}),
      onEntry: (entry) => {
        entries[index] = entry;
        figures.bytes += entry.size;
      },
    });

  // A run of files of one chunk at most is staged several files at once (each holds one buffer
  // of its own size; smallConcurrency below); a run of larger files one file after another, chunks read ahead in
  // order and uploaded `concurrency` at once, the next file read while the last chunks of one
  // upload. Memory stays about (concurrency + ahead) × chunkSize.
  async function* chunksOfRun(from: number, to: number): AsyncGenerator<FileChunk> {
    for (let index = from; index < to; index++) yield* chunksOf(index);
  }
  const files = options.files;
  /**
   * Small files staged at once: as many as fit in the memory `concurrency` whole chunks would
   * take (by the run's largest file), at least `concurrency` and at most SMALL_AT_ONCE, so a
   * folder of tiny files keeps enough writes in flight for the store to flush them together.
   */
  const smallConcurrency = (from: number, to: number): number => {
    let largest = 1;
    for (let i = from; i < to; i++) largest = Math.max(largest, inputSize(files[i] as PutInput));
    return Math.min(SMALL_AT_ONCE, Math.max(concurrency, Math.floor((concurrency * chunkSize) / largest)));
  };
  for (let first = 0; first < files.length; ) {
    const small = isSmall(files[first] as PutInput, chunkSize);
    let end = first;
    while (end < files.length && isSmall(files[end] as PutInput, chunkSize) === small) end += 1;
    if (small) {
      await forEachLimit(indices(first, end), smallConcurrency(first, end), async (index) => {
        for await (const chunk of chunksOf(index)) await stageChunk(chunk);
      });
    } else await forEachLimit(chunksOfRun(first, end), concurrency, stageChunk);
    first = end;
  }
  return { ...figures, entries };
}

/** The most small files staged at once (see smallConcurrency). */
const SMALL_AT_ONCE = 64;

function* indices(from: number, to: number): Generator<number> {
  for (let i = from; i < to; i++) yield i;
}
