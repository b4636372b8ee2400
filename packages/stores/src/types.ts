import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  /**
   * Identity of this version of the object: the S3 ETag (quotes stripped), the GCS generation,
   * or a stat-derived tag for files. Any overwrite gives a new etag.
   */
  etag: string;
  /** ms since the epoch. */
  lastModified: number;
}

/** Inclusive byte range; `end` omitted means "to the end of the object". */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface GetOptions {
  range?: ByteRange;
  /** Fail with PreconditionFailedError unless the object still has this etag. */
  ifMatch?: string;
  /**
   * Where the caller will put the bytes (a chunk buffer). A store of local files reads straight
   * into it, and the body's pieces are then views of `into` in order from `into[0]` (bytes past its
   * end come as pieces of their own): a consumer that sees a piece already in place copies nothing.
   * Other stores ignore it. The caller leaves `into` alone until the body has ended.
   */
  into?: Uint8Array;
}

export interface GetResult {
  /** The whole object's metadata (size is the object's size, not the range's). */
  info: ObjectInfo;
  /** First and last byte (inclusive) that `body` carries. */
  start: number;
  end: number;
  body: Readable;
}

/** Bytes, or a stream whose length is declared up front; a short or long stream is an error. */
export type PutBody = Uint8Array | { stream: Readable; length: number };

export interface PutOptions {
  /**
   * The hex sha256 of the body, when the caller knows it (a native chunk: its id). A store whose
   * server can check it sends it (S3: `x-amz-checksum-sha256`, and the SigV4 payload hash) instead
   * of having its SDK hash the body again; other stores ignore it.
   */
  sha256?: string;
}

export interface PutResult {
  etag: string;
}

export interface ListOptions {
  /** Resume after this cursor (from a previous page). */
  cursor?: string;
  pageSize?: number;
}

export interface ListPage {
  items: ObjectInfo[];
  /**
   * Opaque; pass back as `cursor` to continue after this page (also from another process, so it
   * can be saved as a checkpoint). Absent on the last page.
   */
  cursor?: string;
}

export interface StoreCapabilities {
  scheme: 'file' | 's3' | 'gs' | 'memory' | 'hf';
  /** The server enforces `ifMatch`; when false the store checks client-side only. */
  serverSideIfMatch: boolean;
  /** Largest object a single put accepts (multipart/resumable handled inside the store). */
  maxObjectSize: number;
}

/**
 * The one storage interface every tier uses. Keys are `/`-separated relative keys; a store URL's
 * prefix is applied by the store. Errors are core errors: NotFoundError for a missing key,
 * PreconditionFailedError for a changed etag, RangeNotSatisfiableError, AccessDeniedError,
 * UnavailableError / TransientError for what may succeed later.
 */
export interface ObjectStore {
  /** The store's URL without secrets: safe to log and to record as an origin. */
  readonly url: string;
  readonly capabilities: StoreCapabilities;
  head(key: string): Promise<ObjectInfo>;
  get(key: string, options?: GetOptions): Promise<GetResult>;
  /**
   * Atomic: readers see the old object or the whole new one, never a mix. Bytes given whole are
   * the caller's again once the put settles: a store keeps no reference to them (copy workers
   * reuse their chunk buffers).
   */
  put(key: string, body: PutBody, options?: PutOptions): Promise<PutResult>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix`, in ascending UTF-8 byte order, one page at a time. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ListPage>;
  /**
   * Remove the store's own leftovers of writes that never finished (the file store's `.part`
   * files) last modified before `before` (ms); stores that leave none do not have it.
   */
  sweepTemp?(before: number): Promise<{ files: number; bytes: number }>;
  close?(): Promise<void>;
}
