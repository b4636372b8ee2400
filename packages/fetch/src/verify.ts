import { type ChunkRef, CorruptError, chunkDigest, hashPool, isNativeChunkId, sha256Of, VerifyingStream } from '@ferry/core';
import { takeSole } from './read-bounded.js';

/**
 * Check bytes against a chunk id: sha256 for native chunks, length for external ones (their id
 * binds the origin's etag, which the read was guarded by). Rejects with CorruptError naming
 * `where`. The hash runs on the hash pool; bytes in a shared buffer (`readBounded`'s) are not copied.
 */
export async function verifyChunk(ref: ChunkRef, bytes: Uint8Array, where: string): Promise<void> {
  if (bytes.length !== ref.size) throw new CorruptError(`chunk ${ref.id} from ${where}: ${bytes.length} bytes, expected ${ref.size}`);
  if (isNativeChunkId(ref.id) && (await sha256Of(bytes)) !== chunkDigest(ref.id)) {
    throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  }
}

/**
 * `verifyChunk` for the engine, which holds what a tier returned: a buffer from `readBounded`
 * that nobody else references moves to a hashing thread and back (no copy); use the returned
 * buffer, never the given one.
 */
export async function verifiedChunk(ref: ChunkRef, bytes: Buffer, where: string): Promise<Buffer> {
  if (!isNativeChunkId(ref.id) || bytes.length !== ref.size || !takeSole(bytes)) {
    await verifyChunk(ref, bytes, where);
    return bytes;
  }
  const moved = await hashPool().sha256Moving(bytes);
  if (moved.hex !== chunkDigest(ref.id)) throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  return moved.bytes;
}

/**
 * The streaming form of `verifyChunk`, for copies that never hold a whole chunk: a pass-through
 * that fails with CorruptError before it ends when the bytes do not match, so a store `put` fed
 * by it never commits a bad copy.
 */
export function chunkVerifier(ref: ChunkRef, where: string): VerifyingStream {
  return new VerifyingStream({
    ...(isNativeChunkId(ref.id) ? { sha256: chunkDigest(ref.id) } : {}),
    length: ref.size,
    what: `chunk ${ref.id} from ${where}`,
  });
}
