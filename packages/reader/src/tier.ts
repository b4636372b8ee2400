import { type ChunkRef, chunkKey, type Entry, NotFoundError } from '@ferry/core';
import type { ObjectStore } from '@ferry/stores';

/** Where a chunk sits in its file: what an external chunk's origin read needs. */
export interface ChunkContext {
  entry: Entry;
  /** Offset of the chunk in the file (and in the origin object). */
  offset: number;
}

/**
 * One place a chunk can come from. `get` returns the bytes as the tier holds them (the reader
 * verifies them), or undefined when the tier does not have the chunk.
 */
export interface Tier {
  readonly name: string;
  get(ref: ChunkRef, context?: ChunkContext): Promise<Buffer | undefined>;
}

/**
 * Read a whole (chunk-sized) object into one buffer of the expected size, so a chunk is held once
 * (not as parts plus their join). One byte over is enough to know the copy is wrong.
 */
export async function readBounded(body: AsyncIterable<unknown> & { destroy?: () => void }, limit: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(limit + 1);
  let length = 0;
  for await (const part of body) {
    const buf = part as Buffer;
    const room = limit + 1 - length;
    buf.copy(out, length, 0, Math.min(room, buf.length));
    length += Math.min(room, buf.length);
    if (length > limit) {
      body.destroy?.();
      break;
    }
  }
  return out.subarray(0, length);
}

/** A region's (or the source's) object store, chunks under `chunks/ab/cd/<id>`. */
export function storeTier(name: string, store: ObjectStore): Tier {
  return {
    name,
    async get(ref) {
      try {
        const { body } = await store.get(chunkKey(ref.id));
        return await readBounded(body, ref.size);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    },
  };
}

/**
 * The origin object of an imported file: a ranged read guarded by the etag seen at import, so a
 * changed object fails with PreconditionFailedError instead of serving different bytes.
 */
export function originTier(name: string, openStore: (url: string) => ObjectStore): Tier {
  return {
    name,
    async get(ref, context) {
      const origin = context?.entry.origin;
      if (!origin || !ref.id.startsWith('ext-') || !context) return undefined;
      const { body } = await openStore(origin.store).get(origin.key, {
        range: { start: context.offset, end: context.offset + ref.size - 1 },
        ifMatch: origin.etag,
      });
      return readBounded(body, ref.size);
    },
  };
}
