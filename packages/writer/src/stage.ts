import { BufferPool, type ChunkRef, chunkKey, forEachLimit, type NewEntry, NotFoundError } from '@ferry/core';
import type { Meta } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import { chunkFile, type FileChunk, type PutInput } from './chunking.js';

export interface StageOptions {
  store: ObjectStore;
  meta: Meta;
  files: readonly PutInput[];
  chunkSize: number;
  /** Chunks uploaded at once; memory is about concurrency × chunkSize. */
  concurrency: number;
  /** Bytes read from the files (progress). */
  onBytes?: (delta: number) => void;
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
  const entries: NewEntry[] = [];
  const seen = new Set<string>();

  async function ensureChunk(ref: ChunkRef, bytes: Buffer): Promise<boolean> {
    const [count] = await meta.refCounts([ref.id]);
    if ((count ?? 0) > 0) return false;
    const key = chunkKey(ref.id);
    try {
      if ((await store.head(key)).size === ref.size) return false;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    await store.put(key, bytes);
    return true;
  }

  const concurrency = Math.max(1, Math.floor(options.concurrency));
  const ahead = 2;
  // Every chunk buffer in use is one of these: uploads in flight plus the chunks read ahead.
  const buffers = new BufferPool({ bufferSize: chunkSize, keep: concurrency + ahead + 1 });

  // Files one after another; a chunk is read only when an upload slot is free.
  async function* chunks(): AsyncGenerator<FileChunk> {
    for (const file of options.files) {
      yield* chunkFile(file, {
        chunkSize,
        buffers,
        ahead,
        ...(options.onBytes ? { onBytes: options.onBytes } : {}),
        onEntry: (entry) => {
          entries.push(entry);
          figures.bytes += entry.size;
        },
      });
    }
  }

  await forEachLimit(chunks(), concurrency, async ({ ref, bytes, release }) => {
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
  });
  return { ...figures, entries };
}
