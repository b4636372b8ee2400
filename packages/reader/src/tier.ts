import { type ChunkRef, chunkKey, NotFoundError } from '@ferry/core';
import type { ObjectStore } from '@ferry/stores';

/**
 * One place a chunk can come from. `get` returns the bytes as the tier holds them (the reader
 * verifies them), or undefined when the tier does not have the chunk.
 */
export interface Tier {
  readonly name: string;
  get(ref: ChunkRef): Promise<Buffer | undefined>;
}

/** Read a whole (chunk-sized) object, refusing more bytes than expected. */
async function readBounded(body: AsyncIterable<unknown>, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of body) {
    const buf = part as Buffer;
    length += buf.length;
    // One byte over is enough to know the copy is wrong; stop reading.
    if (length > limit) return Buffer.concat([...parts, buf]).subarray(0, limit + 1);
    parts.push(buf);
  }
  return Buffer.concat(parts, length);
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
