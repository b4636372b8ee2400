import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import {
  type ChunkRef,
  chunkKey,
  type Entry,
  LocalIoError,
  type Logger,
  localIoError,
  type NewEntry,
  NotFoundError,
  nativeChunkId,
  sha256Hex,
} from '@ferry/core';
import type { Meta } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import type { LocalFile } from './local-files.js';
import { Semaphore } from './semaphore.js';

export interface PutOptions {
  store: ObjectStore;
  meta: Meta;
  files: LocalFile[];
  chunkSize: number;
  /** Chunks uploaded at once; memory is about (concurrency + 1) × chunkSize. */
  concurrency: number;
  /** Bytes read from local files (progress). */
  onBytes?: (delta: number) => void;
  logger: Logger;
}

export interface PutSummary {
  files: number;
  /** Files committed (new or different content); the rest were already there as they are. */
  filesChanged: number;
  bytes: number;
  chunks: number;
  chunksUploaded: number;
  chunksPresent: number;
  bytesUploaded: number;
  version: string;
  entries: Entry[];
}

/**
 * Upload the chunks of local files that the store lacks, then commit all entries in one atomic
 * batch. A chunk is known present when the volume references it (a committed entry implies its
 * chunks are in the store) or the store already holds it (left by an earlier, interrupted put);
 * the same chunk met twice in one run is uploaded once.
 */
export async function putFiles(options: PutOptions): Promise<PutSummary> {
  const { store, meta, chunkSize } = options;
  const slots = new Semaphore(options.concurrency);
  const known = new Map<string, Promise<boolean>>();
  const summary = { files: options.files.length, bytes: 0, chunks: 0, chunksUploaded: 0, chunksPresent: 0, bytesUploaded: 0 };
  const failures: unknown[] = [];

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

  function upload(ref: ChunkRef, bytes: Buffer): void {
    summary.chunks += 1;
    let uploaded = known.get(ref.id);
    if (!uploaded) {
      uploaded = ensureChunk(ref, bytes);
      known.set(ref.id, uploaded);
      void uploaded
        .then((sent) => {
          if (sent) {
            summary.chunksUploaded += 1;
            summary.bytesUploaded += ref.size;
          } else summary.chunksPresent += 1;
        })
        .catch((err) => failures.push(err))
        .finally(() => slots.release());
      return;
    }
    summary.chunksPresent += 1;
    slots.release();
  }

  const entries: NewEntry[] = [];
  for (const file of options.files) {
    if (failures.length > 0) break;
    entries.push(await chunkFile(file, chunkSize, slots, upload, options.onBytes));
    summary.bytes += file.size;
  }
  await slots.drain();
  await Promise.allSettled(known.values());
  if (failures.length > 0) throw failures[0];
  // Files whose content is already there as-is are left alone: no new version, no change record,
  // nothing for mirrors to replay.
  const current = await Promise.all(entries.map((e) => meta.tryStat(e.path)));
  const changed = entries.filter((e, i) => !sameContent(e, current[i]));
  const unchanged = current.filter((e): e is Entry => e !== undefined && !changed.some((c) => c.path === e.path));
  if (changed.length === 0) {
    const version =
      unchanged
        .map((e) => e.version)
        .sort()
        .at(-1) ?? '0-0';
    return { ...summary, filesChanged: 0, version, entries: unchanged };
  }
  const committed = await meta.commit(changed);
  options.logger.info({ files: changed.length, version: committed.version }, 'committed');
  return { ...summary, filesChanged: changed.length, version: committed.version, entries: [...committed.entries, ...unchanged] };
}

function sameContent(next: NewEntry, current: Entry | undefined): boolean {
  return (
    current !== undefined &&
    current.sha256 === next.sha256 &&
    current.size === next.size &&
    current.chunkSize === next.chunkSize &&
    current.origin === undefined
  );
}

/** Read a file chunk by chunk (one chunk buffer per free slot), hashing chunks and the whole file. */
async function chunkFile(
  file: LocalFile,
  chunkSize: number,
  slots: Semaphore,
  upload: (ref: ChunkRef, bytes: Buffer) => void,
  onBytes?: (delta: number) => void,
): Promise<NewEntry> {
  const handle = await open(file.local, 'r').catch((err) => {
    throw localIoError(err, 'cannot read', file.local);
  });
  const whole = createHash('sha256');
  const chunks: ChunkRef[] = [];
  let offset = 0;
  try {
    for (;;) {
      await slots.acquire();
      const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkSize, file.size - offset)));
      let filled = 0;
      while (filled < buffer.length) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) {
        slots.release();
        break;
      }
      const bytes = buffer.subarray(0, filled);
      whole.update(bytes);
      const ref = { id: nativeChunkId(sha256Hex(bytes)), size: filled };
      chunks.push(ref);
      upload(ref, bytes);
      offset += filled;
      onBytes?.(filled);
      if (filled < buffer.length) break;
    }
    const after = await handle.stat();
    if (offset !== file.size || after.size !== file.size) {
      throw new LocalIoError(`${file.local} changed while it was being read (${file.size} bytes, then ${offset}); nothing committed`);
    }
  } finally {
    await handle.close();
  }
  return { path: file.path, size: file.size, mtime: file.mtime, sha256: whole.digest('hex'), chunkSize, chunks };
}
