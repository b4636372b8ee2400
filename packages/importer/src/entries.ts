import { type ChunkRef, type Entry, externalChunkId, type NewEntry } from '@ferry/core';
import type { ObjectInfo } from '@ferry/stores';

/**
 * The entry of an imported object: its bytes stay in the origin, cut into `chunkSize` ext- chunks
 * whose ids bind (store, key, etag, range), so a later overwrite of the object can never be read
 * as this file. An entry is a pure function of the object, which makes re-imports idempotent.
 */
export function importedEntry(store: string, path: string, info: ObjectInfo, chunkSize: number): NewEntry {
  const { key, etag, size, lastModified } = info;
  const chunks: ChunkRef[] = [];
  for (let offset = 0; offset < size; offset += chunkSize) {
    const length = Math.min(chunkSize, size - offset);
    chunks.push({ id: externalChunkId({ store, key, etag, offset, length }), size: length });
  }
  return { path, size, mtime: lastModified, chunkSize, chunks, origin: { store, key, etag, size, lastModified } };
}

/** True when `entry` was imported from this very object of `store`. */
export function importedFrom(entry: Entry, store: string, key: string): boolean {
  return entry.origin?.store === store && entry.origin.key === key;
}

/** True when the object has the fingerprint the entry was imported with (nothing to write). */
export function sameFingerprint(entry: Entry, info: ObjectInfo): boolean {
  const o = entry.origin;
  return (
    o !== undefined && o.etag === info.etag && o.size === info.size && o.lastModified === info.lastModified && entry.size === info.size
  );
}
