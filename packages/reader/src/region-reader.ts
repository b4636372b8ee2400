import type { Readable } from 'node:stream';
import { type ChunkRef, type Entry, type Logger, messageOf, silentLogger } from '@ferry/core';
import { type ChunkContext, ChunkReader, type KnownHashes, originRead, originTier, storeTier, type Tier } from '@ferry/fetch';
import type { CopyRequest } from '@ferry/jobs';
import type { Meta } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import { type ReadRangeOptions, readRange } from './file-stream.js';

export interface RegionReaderOptions {
  /** The region's metadata (a mirror shows a file as soon as its change is applied). */
  meta: Meta;
  region: string;
  /** The region's own object store. */
  store: ObjectStore;
  /** The source region's store; absent when reading in the source region itself. */
  source?: { name: string; store: ObjectStore };
  /** Opens the origin store of an imported file's external chunks. */
  openOrigin?: (url: string) => ObjectStore;
  /** The region's cache nodes, when it has some. */
  cache?: Tier;
  /** The region's hashes of external chunks, to check their copies against. */
  hashes?: KnownHashes;
  /** Queue copies of chunks that had to come from outside the region (mirrors only). */
  /** Each request names the file it was read for (`path`), where the region looks the chunk up. */
  backfill?: (requests: Array<CopyRequest & { path?: string }>) => Promise<void>;
  /**
   * How many queued backfills are remembered so a chunk is not queued again (default 50,000,
   * about 10 MiB); the oldest is forgotten first. Queuing one again is harmless (copy jobs are keyed
   * by chunk id), so a long-lived gateway keeps bounded memory.
   */
  backfillMemo?: number;
  /** Verified chunks kept in process memory (`reader.memoryBytes`; 0 for a one-pass read). */
  memoryBytes: number;
  /** Of `memoryBytes`, how much chunks asked for once may hold (default an eighth). */
  memoryProbationBytes?: number;
  /** Chunks fetched ahead on sequential reads (`reader.prefetch`). */
  prefetch: number;
  logger?: Logger;
}

/**
 * Reads files of a volume in one region from the nearest place that has their bytes: process
 * memory → cache nodes → the region's store → the source (its store, or the origin object of an
 * imported file). A chunk that had to come from the source is queued for copying into the region
 * once (backfill), so the next reader finds it locally.
 */
export class RegionReader {
  readonly chunks: ChunkReader;
  readonly meta: Meta;
  readonly region: string;
  /** Chunks fetched ahead on sequential reads. */
  readonly prefetch: number;
  readonly #backfilled = new Set<string>();
  readonly #backfillMemo: number;
  readonly #backfill: RegionReaderOptions['backfill'];
  readonly #log: Logger;

  constructor(options: RegionReaderOptions) {
    this.meta = options.meta;
    this.region = options.region;
    this.prefetch = options.prefetch;
    this.#backfill = options.backfill;
    this.#backfillMemo = Math.max(1, options.backfillMemo ?? 50_000);
    this.#log = options.logger ?? silentLogger;
    const local: Tier[] = [...(options.cache ? [options.cache] : []), storeTier(`store:${options.region}`, options.store)];
    const remote: Tier[] = [
      ...(options.source ? [storeTier(`source:${options.source.name}`, options.source.store)] : []),
      ...(options.openOrigin ? [originTier('origin', options.openOrigin)] : []),
    ];
    this.chunks = new ChunkReader({
      tiers: [...local, ...remote],
      fallbackFrom: local.length,
      memoryBytes: options.memoryBytes,
      ...(options.memoryProbationBytes === undefined ? {} : { memoryProbationBytes: options.memoryProbationBytes }),
      onFallback: (ref, context) => this.#queueBackfill(ref, context),
      ...(options.hashes ? { hashes: options.hashes } : {}),
      logger: this.#log,
    });
  }

  /** Chunks queued for backfill by this reader and still remembered (at most `backfillMemo`). */
  get backfilled(): number {
    return this.#backfilled.size;
  }

  stat(path: string): Promise<Entry> {
    return this.meta.stat(path);
  }

  fetch = (ref: ChunkRef, context?: ChunkContext): Promise<Buffer> => this.chunks.fetch(ref, context);

  /**
   * Chunks to fetch at once for a sequential read: the configured prefetch, or more when the
   * cache tier has more nodes to keep busy.
   */
  get window(): number {
    return Math.max(this.prefetch, this.chunks.parallelism);
  }

  /** Bytes `start..end` (inclusive) of a file as a stream, prefetching ahead. */
  stream(entry: Entry, options: ReadRangeOptions = {}): Readable {
    return readRange(entry, this.fetch, { ...options, prefetch: this.window });
  }

  /** `length` bytes at `offset` (for random reads). */
  async read(entry: Entry, offset: number, length: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of this.stream(entry, { start: offset, end: offset + length - 1 })) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  #queueBackfill(ref: ChunkRef, context: ChunkContext | undefined): void {
    if (!this.#backfill || this.#backfilled.has(ref.id)) return;
    if (this.#backfilled.size >= this.#backfillMemo) this.#backfilled.delete(this.#backfilled.values().next().value as string);
    this.#backfilled.add(ref.id);
    const origin = originRead(ref, context);
    const request: CopyRequest & { path?: string } = {
      chunk: ref.id,
      size: ref.size,
      first: context?.offset === 0,
      ...(origin ? { origin } : {}),
      ...(context ? { path: context.entry.path } : {}),
    };
    this.#backfill([request]).catch((err) => {
      // The read already succeeded; a lost backfill only means the next reader falls back again.
      this.#backfilled.delete(ref.id);
      this.#log.warn({ err, chunk: ref.id, reason: messageOf(err) }, 'could not queue a backfill copy');
    });
  }
}
