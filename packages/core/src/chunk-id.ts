import { createHash } from 'node:crypto';
import { InvalidArgumentError } from './errors.js';

/** `sha256-<64 hex>` for native chunks, `ext-<64 hex>` for chunks of an imported object. */
export type ChunkId = string & { readonly __chunkId: unique symbol };

export const CHUNK_ID_PATTERN = /^(sha256|ext)-[0-9a-f]{64}$/;

export function isChunkId(value: unknown): value is ChunkId {
  return typeof value === 'string' && CHUNK_ID_PATTERN.test(value);
}

/**
 * Validate an id before it is used as a Redis key, a file name or an object key. Ids arrive
 * from the network (cache nodes, job payloads), so nothing else may be trusted.
 */
export function parseChunkId(value: unknown): ChunkId {
  if (isChunkId(value)) return value;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  throw new InvalidArgumentError(`invalid chunk id ${shown}: expected sha256-<64 hex> or ext-<64 hex>`);
}

export function isNativeChunkId(id: ChunkId): boolean {
  return id.startsWith('sha256-');
}

export function nativeChunkId(sha256Hex: string): ChunkId {
  return parseChunkId(`sha256-${sha256Hex}`);
}

/** Hex digest a native chunk's bytes must have. */
export function chunkDigest(id: ChunkId): string {
  return id.slice(id.indexOf('-') + 1);
}

/**
 * The sha256 a store may be told a chunk's bytes have (`ObjectStore.put` options): a native
 * chunk's id is its digest; an external chunk's id says nothing about its bytes.
 */
export function chunkSha256(id: ChunkId): { sha256?: string } {
  return isNativeChunkId(id) ? { sha256: chunkDigest(id) } : {};
}

export interface ExternalChunkSource {
  /** Identity of the origin store (its URL without query secrets). */
  store: string;
  key: string;
  /** Etag or generation that guards the ranged read. */
  etag: string;
  offset: number;
  length: number;
}

/** Id of a range of an imported object: a change of any field gives a different id. */
export function externalChunkId(src: ExternalChunkSource): ChunkId {
  const h = createHash('sha256');
  h.update(JSON.stringify([src.store, src.key, src.etag, src.offset, src.length]));
  return parseChunkId(`ext-${h.digest('hex')}`);
}

/** Object key of a chunk within a region store: `chunks/<hex[0:2]>/<hex[2:4]>/<id>`. */
export function chunkKey(id: ChunkId): string {
  const hex = chunkDigest(parseChunkId(id));
  return `chunks/${hex.slice(0, 2)}/${hex.slice(2, 4)}/${id}`;
}
