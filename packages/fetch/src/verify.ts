import { type ChunkRef, CorruptError, chunkDigest, isNativeChunkId, sha256Of, VerifyingStream } from '@ferry/core';

/**
 * Check bytes against a chunk id: sha256 for native chunks, length for external ones (their id
 * binds the origin's etag, which the read was guarded by). Rejects with CorruptError naming
 * `where`. The hash runs on the hash pool.
 */
export async function verifyChunk(ref: ChunkRef, bytes: Uint8Array, where: string): Promise<void> {
  if (bytes.length !== ref.size) throw new CorruptError(`chunk ${ref.id} from ${where}: ${bytes.length} bytes, expected ${ref.size}`);
  if (isNativeChunkId(ref.id) && (await sha256Of(bytes)) !== chunkDigest(ref.id)) {
    throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  }
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
