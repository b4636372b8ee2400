import type { Readable } from 'node:stream';
import { type ChunkRef, type Entry, isNativeChunkId } from '@ferry/core';
import type { ObjectStore } from '@ferry/stores';

/** Where a chunk sits in its file: what an external chunk's origin read needs. */
export interface ChunkContext {
  entry: Entry;
  /** Offset of the chunk in the file (and in the origin object). */
  offset: number;
}

/**
 * Where an external chunk's bytes live: a range of the imported object, read only while the
 * object still has the etag seen at import. The same shape travels in copy jobs.
 */
export interface OriginRead {
  /** Store URL of the origin object. */
  store: string;
  key: string;
  etag: string;
  /** Offset of the chunk in the origin object. */
  offset: number;
}

/**
 * The origin read of a chunk of a file, or undefined when there is none: native chunks live in
 * stores under their id, and only an imported entry names an origin.
 */
export function originRead(ref: ChunkRef, context: ChunkContext | undefined): OriginRead | undefined {
  const origin = context?.entry.origin;
  if (!origin || !context || isNativeChunkId(ref.id)) return undefined;
  return { store: origin.store, key: origin.key, etag: origin.etag, offset: context.offset };
}

/**
 * Open the bytes of an external chunk: a ranged GET guarded by the etag (If-Match), so a changed
 * object fails with PreconditionFailedError instead of serving different bytes.
 */
export async function openOriginRead(
  openStore: (url: string) => ObjectStore,
  read: OriginRead,
  size: number,
  /** A buffer the store may read into (GetOptions.into). */
  into?: Uint8Array,
): Promise<Readable> {
  const { body } = await openStore(read.store).get(read.key, {
    range: { start: read.offset, end: read.offset + size - 1 },
    ifMatch: read.etag,
    ...(into ? { into } : {}),
  });
  return body;
}
