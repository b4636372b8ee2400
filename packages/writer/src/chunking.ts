import { open } from 'node:fs/promises';
import {
  type BufferPool,
  type ChunkRef,
  hashPool,
  LocalIoError,
  localIoError,
  type NewEntry,
  nativeChunkId,
  normalizePath,
  type PooledBuffer,
  readAhead,
} from '@ferry/core';
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
  /**
   * The consumer is done with `bytes` (uploaded): a pooled buffer may be reused from then on.
   * Optional to call; a chunk never released is only garbage-collected.
   */
  release(): void;
}

export interface ChunkFileOptions {
  chunkSize: number;
  /** Buffers of `chunkSize` bytes to read local files into (default: a fresh buffer per chunk). */
  buffers?: BufferPool;
  /** Chunks read and hashed ahead of the one the consumer asked for (default 2). */
  ahead?: number;
  /** Bytes read so far (progress). */
  onBytes?: (delta: number) => void;
  /** Called once, after the last chunk: the file's entry, ready to commit. */
  onEntry(entry: NewEntry): void;
}

/**
 * The chunks of one file in order, each named by its sha256, the whole file hashed on the way.
 * Hashing runs on the hash pool: each chunk's hash and the file's hash read the same shared
 * buffer on two threads. A local file is read with large positional reads up to `ahead` chunks
 * before the consumer asks, so reading and hashing overlap with the consumer's uploads while
 * memory stays at (ahead + chunks the consumer holds) × chunkSize. A local file whose size changes
 * while it is read is an error: its entry would describe bytes nobody uploaded.
 */
export function chunkFile(input: PutInput, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  if ('bytes' in input) return chunkBytes(input, options);
  return input.size > 0 && input.size <= options.chunkSize ? chunkSmallFile(input, options) : chunkLocalFile(input, options);
}

/** Whether a file is one chunk at most: read in one go, and staged beside other such files. */
export function isSmall(input: PutInput, chunkSize: number): boolean {
  return inputSize(input) <= chunkSize;
}

/** Bytes of a file to put. */
export function inputSize(input: PutInput): number {
  return 'bytes' in input ? input.bytes.length : input.size;
}

const nothing = () => {};

/** `release` for a consumer that may call it more than once: the buffer goes back once. */
function once(release: () => void): () => void {
  let released = false;
  return () => {
    if (!released) release();
    released = true;
  };
}

async function* chunkBytes(input: BytesFile, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  const { chunkSize } = options;
  // Before the first chunk, so a bad name uploads nothing.
  const path = normalizePath(input.path);
  const all = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
  const pool = hashPool();
  const whole = pool.sha256(all);
  const chunks: ChunkRef[] = [];
  for (let at = 0; at < all.length; at += chunkSize) {
    const bytes = all.subarray(at, Math.min(at + chunkSize, all.length));
    const ref = { id: nativeChunkId(await pool.sha256(bytes)), size: bytes.length };
    chunks.push(ref);
    options.onBytes?.(bytes.length);
    yield { ref, bytes, release: nothing };
  }
  options.onEntry({ path, size: all.length, mtime: input.mtime ?? Date.now(), sha256: await whole, chunkSize, chunks });
}

/** Files smaller than this are read into a buffer of their own (hash-pool's inline size). */
const OWN_BUFFER_BELOW = 64 * 1024;

/**
 * A local file of one chunk: one read, one hash (the chunk's is the file's), no read-ahead. A
 * short read, or a byte past the planned size, means the file changed while it was read.
 */
async function* chunkSmallFile(file: LocalFile, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  // A tiny file gets a buffer of its own size: it is hashed on this thread, and a chunk-sized
  // pooled buffer for each of the many staged at once would reserve chunkSize apiece.
  const buffer =
    (file.size >= OWN_BUFFER_BELOW && options.buffers?.take(file.size)) ||
    ({ bytes: Buffer.allocUnsafeSlow(file.size), hold: nothing, release: nothing } as const);
  let hex: string;
  try {
    const filled = await readSmall(file, buffer.bytes);
    if (filled !== file.size) {
      throw new LocalIoError(
        `${file.local} changed while it was being read (${file.size} bytes, then ${filled > file.size ? 'more' : filled}); nothing committed`,
      );
    }
    hex = await hashPool().sha256(buffer.bytes);
  } catch (err) {
    buffer.release();
    throw err;
  }
  const ref = { id: nativeChunkId(hex), size: file.size };
  options.onBytes?.(file.size);
  yield { ref, bytes: buffer.bytes, release: once(buffer.release) };
  options.onEntry({ path: file.path, size: file.size, mtime: file.mtime, sha256: hex, chunkSize: options.chunkSize, chunks: [ref] });
}

/** Bytes read into `target` (its length is the planned size), or planned size + 1 when the file grew. */
async function readSmall(file: LocalFile, target: Buffer): Promise<number> {
  const handle = await open(file.local, 'r').catch((err) => {
    throw localIoError(err, 'cannot read', file.local);
  });
  try {
    let filled = 0;
    while (filled < target.length) {
      const { bytesRead } = await handle.read(target, filled, target.length - filled, filled);
      if (bytesRead === 0) return filled;
      filled += bytesRead;
    }
    return (await handle.read(Buffer.alloc(1), 0, 1, filled)).bytesRead > 0 ? filled + 1 : filled;
  } catch (err) {
    throw localIoError(err, 'cannot read', file.local);
  } finally {
    await handle.close();
  }
}

/** A chunk read from disk whose hash is on its way. */
interface ReadPiece {
  buffer: PooledBuffer;
  bytes: Buffer;
  hash: Promise<string>;
}

async function* chunkLocalFile(file: LocalFile, options: ChunkFileOptions): AsyncGenerator<FileChunk> {
  const { chunkSize } = options;
  const handle = await open(file.local, 'r').catch((err) => {
    throw localIoError(err, 'cannot read', file.local);
  });
  const pool = hashPool();
  const whole = pool.session();
  const take = (length: number): PooledBuffer =>
    options.buffers?.take(length) ?? { bytes: Buffer.allocUnsafeSlow(length), hold: nothing, release: nothing };
  let offset = 0;
  // Reads stay in order (the file's hash is fed in order); hashes run while later chunks are read.
  async function* pieces(): AsyncGenerator<ReadPiece> {
    for (;;) {
      // At the planned end this is a one-byte read: it tells whether the file grew meanwhile.
      const buffer = take(Math.max(1, Math.min(chunkSize, file.size - offset)));
      const target = buffer.bytes;
      let filled = 0;
      try {
        while (filled < target.length) {
          const { bytesRead } = await handle.read(target, filled, target.length - filled, offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
      } catch (err) {
        buffer.release();
        throw localIoError(err, 'cannot read', file.local);
      }
      if (filled === 0) {
        buffer.release();
        return;
      }
      const bytes = target.subarray(0, filled);
      offset += filled;
      // The file's hash holds the buffer too: it goes back to the pool after both are done.
      buffer.hold();
      whole.update(bytes).then(buffer.release, buffer.release);
      yield { buffer, bytes, hash: pool.sha256(bytes) };
      if (filled < target.length) return;
    }
  }
  const chunks: ChunkRef[] = [];
  let finished = false;
  try {
    for await (const piece of readAhead(pieces(), Math.max(1, options.ahead ?? 2))) {
      let hex: string;
      try {
        hex = await piece.hash;
      } catch (err) {
        piece.buffer.release();
        throw err;
      }
      const ref = { id: nativeChunkId(hex), size: piece.bytes.length };
      chunks.push(ref);
      options.onBytes?.(ref.size);
      yield { ref, bytes: piece.bytes, release: once(piece.buffer.release) };
    }
    const after = await handle.stat();
    if (offset !== file.size || after.size !== file.size) {
      throw new LocalIoError(`${file.local} changed while it was being read (${file.size} bytes, then ${offset}); nothing committed`);
    }
    finished = true;
  } finally {
    // A failure, or a consumer that stopped early: the file's hash is not wanted.
    if (!finished) whole.abort();
    await handle.close();
  }
  options.onEntry({ path: file.path, size: file.size, mtime: file.mtime, sha256: await whole.digest(), chunkSize, chunks });
}
