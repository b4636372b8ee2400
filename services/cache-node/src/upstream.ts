import {
  type ChunkId,
  CorruptError,
  type Entry,
  InvalidArgumentError,
  isNativeChunkId,
  isRetryable,
  type Logger,
  NotFoundError,
  silentLogger,
} from '@ferry/core';
import { type ChunkContext, ChunkReader, type KnownHashes, originTier, storeTier, type Tier } from '@ferry/fetch';
import type { ObjectStore } from '@ferry/stores';

export interface ChunkWant {
  id: ChunkId;
  size: number;
}

/**
 * Where a node reads a chunk it does not hold: verified bytes, undefined when no tier has the
 * chunk, or a thrown error when a tier could not be asked (the client may try again later). The
 * context — an external chunk's file, looked up in the region's own metadata — lets the read go
 * to the chunk's origin object.
 */
export type Upstream = (chunk: ChunkWant, context?: ChunkContext) => Promise<Buffer | undefined>;

/** The region's entries, as the node needs them (a `Meta` of the region's Redis). */
export interface EntryLookup {
  stat(path: string): Promise<Entry>;
}

export interface RegionUpstreamOptions {
  /** The region's own store. */
  store: { name: string; store: ObjectStore };
  /** The source region's store (mirrors only). */
  source?: { name: string; store: ObjectStore };
  /** Opens the origin store of an imported file's external chunks. */
  openOrigin?: (url: string) => ObjectStore;
  /** The region's hashes of external chunks: copies are checked against them, and a first fill from the origin records one. */
  hashes?: KnownHashes;
  /** Told of each copy a tier served that failed verification (the node counts them). */
  onBadCopy?: (tier: string) => void;
  logger?: Logger;
}

/**
 * Read-through with the readers' engine over the region's tiers: its own store, the source's
 * store, then the origin object of an external chunk (ranged, etag-guarded). Every copy is
 * verified; a corrupt or unreadable one is logged and the next tier tried. No memory cache: the
 * node's disk is the cache.
 */
export function regionUpstream(options: RegionUpstreamOptions): Upstream {
  const tiers: Tier[] = [
    storeTier(options.store.name, options.store.store),
    ...(options.source ? [storeTier(options.source.name, options.source.store)] : []),
    ...(options.openOrigin ? [originTier('origin', options.openOrigin)] : []),
  ];
  const reader = new ChunkReader({
    tiers,
    memoryBytes: 0,
    ...(options.hashes ? { hashes: options.hashes } : {}),
    ...(options.onBadCopy ? { onBadCopy: options.onBadCopy } : {}),
    logger: options.logger ?? silentLogger,
  });
  return async (chunk, context) => {
    try {
      return await reader.fetch(chunk, context);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      // A tier that could not be asked is "try again later" for the client, not a bad copy.
      if (err instanceof CorruptError && isRetryable(err.cause)) throw err.cause;
      throw err;
    }
  };
}

/**
 * Where an external chunk sits, from the region's metadata: the entry at `path` must list the
 * chunk with this size. The origin is never taken from the request itself, so a client cannot
 * make the node read an object the region does not reference.
 */
export async function chunkContext(entries: EntryLookup, want: ChunkWant, path: string): Promise<ChunkContext> {
  if (isNativeChunkId(want.id)) throw new InvalidArgumentError(`chunk ${want.id}: a path is only for external chunks`);
  let entry: Entry;
  try {
    entry = await entries.stat(path);
  } catch (err) {
    if (err instanceof NotFoundError) throw new InvalidArgumentError(`chunk ${want.id}: no file ${path} in this region`);
    throw err;
  }
  let offset = 0;
  for (const ref of entry.chunks) {
    if (ref.id === want.id) {
      if (ref.size !== want.size) throw new InvalidArgumentError(`chunk ${want.id} of ${path} has ${ref.size} bytes, not ${want.size}`);
      return { entry, offset };
    }
    offset += ref.size;
  }
  throw new InvalidArgumentError(`${path} does not list chunk ${want.id}`);
}
