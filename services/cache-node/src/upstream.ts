import {
  type ChunkId,
  CorruptError,
  chunkDigest,
  chunkKey,
  isNativeChunkId,
  type Logger,
  messageOf,
  NotFoundError,
  readUpTo,
  sha256Hex,
  silentLogger,
} from '@ferry/core';
import type { ObjectStore } from '@ferry/stores';

export interface ChunkWant {
  id: ChunkId;
  size: number;
}

/**
 * Where a node reads a chunk it does not hold: verified bytes, undefined when no store has the
 * chunk, or a thrown error when a store could not be asked (the client may try again later).
 */
export type Upstream = (chunk: ChunkWant) => Promise<Buffer | undefined>;

/** Bytes against a chunk id: sha256 for native chunks, length for external ones. Throws CorruptError. */
export function verifyChunkBytes(chunk: ChunkWant, bytes: Buffer, where: string): void {
  if (bytes.length !== chunk.size) throw new CorruptError(`chunk ${chunk.id} from ${where}: ${bytes.length} bytes, expected ${chunk.size}`);
  if (isNativeChunkId(chunk.id) && sha256Hex(bytes) !== chunkDigest(chunk.id)) {
    throw new CorruptError(`chunk ${chunk.id} from ${where}: sha256 mismatch`);
  }
}

/**
 * Read-through from the region's stores in order — the region's own store, then the source's —
 * under the shared `chunks/ab/cd/<id>` layout. A corrupt or unreadable copy is logged and the next
 * store tried; only when none answered and at least one failed is the failure thrown.
 */
export function storesUpstream(stores: ReadonlyArray<{ name: string; store: ObjectStore }>, logger: Logger = silentLogger): Upstream {
  return async (chunk) => {
    let failure: unknown;
    for (const { name, store } of stores) {
      try {
        const { body } = await store.get(chunkKey(chunk.id));
        const bytes = await readUpTo(body, chunk.size);
        verifyChunkBytes(chunk, bytes, name);
        return bytes;
      } catch (err) {
        if (err instanceof NotFoundError) continue;
        failure = err;
        logger.warn({ err, chunk: chunk.id, store: name, reason: messageOf(err) }, 'read-through from a store failed; trying the next');
      }
    }
    if (failure !== undefined) throw failure;
    return undefined;
  };
}
