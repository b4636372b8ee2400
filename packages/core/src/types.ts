import type { ChunkId } from './chunk-id.js';

export interface ChunkRef {
  id: ChunkId;
  /** Length in bytes (all chunks of a file are `chunkSize` long except the last). */
  size: number;
}

/** Where an imported file's bytes really live; its chunks are `ext-` chunks of this object. */
export interface Origin {
  /** Store URL of the origin (no secrets: credentials never appear in URLs). */
  store: string;
  key: string;
  /** Etag (S3, file) or generation (GCS) seen at import; reads are guarded by it. */
  etag: string;
  size: number;
  lastModified: number;
}

/** Metadata of one file in a volume. */
export interface Entry {
  path: string;
  size: number;
  /** Modification time, ms since the epoch. */
  mtime: number;
  /** Change-log id of the record that wrote this entry ("0-0" before it is committed). */
  version: string;
  /** Whole-file sha256 in hex, when known (always for `ferry put`, not for imports). */
  sha256?: string;
  chunkSize: number;
  chunks: ChunkRef[];
  origin?: Origin;
}

/** An entry about to be committed: the version is assigned by the commit. */
export type NewEntry = Omit<Entry, 'version'>;
