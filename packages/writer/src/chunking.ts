import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { type ChunkRef, LocalIoError, localIoError, type NewEntry, nativeChunkId, normalizePath, sha256Hex } from '@ferry/core';
import type { LocalFile } from './local-files.js';

/** Bytes already in memory, to be written at `path` (generated files, test fixtures). */
export interface BytesFile {
  path: string;
  bytes: Uint8Array;
  /** Milliseconds since the epoch; default: now. */
  mtime?: number;
}

/** What a put writes: a file on the local disk (from `planPut`) or bytes in memory. */
export type PutInput = LocalFile | BytesFile;

/** One chunk of a file: its id and size, and the bytes themselves. */
export interface FileChunk {
  ref: ChunkRef;
  bytes: Buffer;
}

export interface ChunkFileOptions {
  chunkSize: number;
  /** Bytes read so far (progress). */
  onBytes?: (delta: number) => void;
  /** Called once, after the last chunk: the file's entry, ready to commit. */
  onEntry(entry: NewEntry): void;
}

/**
 * The chunks of one file in order, each named by its sha256, the whole file hashed on the way.
 * A local file is read one chunk per `next()` into a fresh buffer, so a consumer that pulls only
 * when it has room holds no more chunks than it asked for. A local file whose size changes while
 * it is read is an error: its entry would describe bytes nobody uploaded.
 */
export function chunkFile(input: PutInput, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  return 'bytes' in input ? chunkBytes(input, options) : chunkLocalFile(input, options);
}

async function* chunkBytes(input: BytesFile, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  const { chunkSize } = options;
  // Before the first chunk, so a bad name uploads nothing.
  const path = normalizePath(input.path);
  const all = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
  const chunks: ChunkRef[] = [];
  for (let at = 0; at < all.length; at += chunkSize) {
    const bytes = all.subarray(at, Math.min(at + chunkSize, all.length));
    const ref = { id: nativeChunkId(sha256Hex(bytes)), size: bytes.length };
    chunks.push(ref);
    options.onBytes?.(bytes.length);
    yield { ref, bytes };
  }
  options.onEntry({
    path,
    size: all.length,
    mtime: input.mtime ?? Date.now(),
    sha256: sha256Hex(all),
    chunkSize,
    chunks,
  });
}

async function* chunkLocalFile(file: LocalFile, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  const { chunkSize } = options;
  const handle = await open(file.local, 'r').catch((err) => {
    throw localIoError(err, 'cannot read', file.local);
  });
  const whole = createHash('sha256');
  const chunks: ChunkRef[] = [];
  let offset = 0;
  try {
    for (;;) {
      // At the planned end this is a one-byte read: it tells whether the file grew meanwhile.
      const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkSize, file.size - offset)));
      let filled = 0;
      while (filled < buffer.length) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      const bytes = buffer.subarray(0, filled);
      whole.update(bytes);
      const ref = { id: nativeChunkId(sha256Hex(bytes)), size: filled };
      chunks.push(ref);
      offset += filled;
      options.onBytes?.(filled);
      yield { ref, bytes };
      if (filled < buffer.length) break;
    }
    const after = await handle.stat();
    if (offset !== file.size || after.size !== file.size) {
      throw new LocalIoError(`${file.local} changed while it was being read (${file.size} bytes, then ${offset}); nothing committed`);
    }
  } finally {
    await handle.close();
  }
  options.onEntry({ path: file.path, size: file.size, mtime: file.mtime, sha256: whole.digest('hex'), chunkSize, chunks });
}
