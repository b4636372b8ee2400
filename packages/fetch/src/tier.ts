import { type ChunkRef, chunkKey, NotFoundError } from '@ferry/core';
import type { ObjectStore } from '@ferry/stores';
import { type ChunkContext, openOriginRead, originRead } from './origin.js';
import { chunkBuffer, readBounded, recycle } from './read-bounded.js';

/**
 * One place a chunk can come from. `get` returns the bytes as the tier holds them (the engine
 * verifies them), or undefined when the tier does not have the chunk.
 */
export interface Tier {
  readonly name: string;
  /**
   * Its copies are the reference for external chunks (the origin, read under its etag guard): the
   * first one a region verifies records the chunk's sha256.
   */
  readonly authoritative?: boolean;
  get(ref: ChunkRef, context?: ChunkContext): Promise<Buffer | undefined>;
  /**
   * Chunk requests this tier takes at once to keep all its servers busy (a cluster of cache
   * nodes: nodes × requests per node). Readers size their read-ahead window to at least this.
   */
  parallelism?(): number;
  /**
   * The chunk this tier just returned failed verification: tell the server that sent it (a cache
   * node re-checks its copy and evicts it). Best effort; never throws.
   */
  reportBad?(ref: ChunkRef): void;
  /** An error of this tier that must end the read instead of trying the next tier (a refused credential the reader was told not to read around). */
  isFatal?(err: unknown): boolean;
}

/** A region's (or the source's) object store, chunks under `chunks/ab/cd/<id>`. */
export function storeTier(name: string, store: ObjectStore): Tier {
  return {
    name,
    async get(ref) {
      const into = chunkBuffer(ref.size);
      try {
        const { body } = await store.get(chunkKey(ref.id), { into });
        return await readBounded(body, ref.size, into);
      } catch (err) {
        // Nothing read into it (a miss is the common case of an empty region store): reuse it.
        recycle(into);
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    },
  };
}

/**
 * The origin object of an imported file, for its external chunks. The origin comes from the
 * entry in the context, so a chunk asked for without its file is not this tier's.
 */
export function originTier(name: string, openStore: (url: string) => ObjectStore): Tier {
  return {
    name,
    authoritative: true,
    async get(ref, context) {
      const read = originRead(ref, context);
      if (!read) return undefined;
      return readBounded(await openOriginRead(openStore, read, ref.size), ref.size);
    },
  };
}
