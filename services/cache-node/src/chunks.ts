import {
  BusyError,
  type ChunkId,
  concurrencyLimit,
  InvalidArgumentError,
  type Logger,
  messageOf,
  NotFoundError,
  parseChunkId,
} from '@ferry/core';
import { type ChunkContext, recycle } from '@ferry/fetch';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ChunkAdmission } from './admission.js';
import type { DiskCache, OpenChunk } from './disk-cache.js';
import type { CacheMetrics } from './metrics.js';
import { type ChunkWant, chunkContext, type EntryLookup, type Upstream } from './upstream.js';

/** What a chunk request is served from: the verified file, or bytes in memory. */
export interface Obtained {
  file?: OpenChunk;
  bytes?: Buffer;
  size: number;
  via: 'hit' | 'fill';
  /** The request is done with `bytes` (sent or abandoned): a fill's buffer is reused once every request that got it is. */
  release?: () => void;
}

/** A fill's verified bytes as one request holds them. */
export interface Filled {
  bytes: Buffer;
  stored: boolean;
  /** Once, when this request is done with `bytes`; the last of them gives the buffer back for the next fill. */
  release(): void;
}

interface Flight {
  promise: Promise<{ bytes: Buffer; stored: boolean } | undefined>;
  /** Requests given (or waiting for) the bytes and not done with them yet. */
  holders: number;
}

export interface NodeChunksOptions {
  cache: DiskCache;
  upstream?: Upstream;
  entries?: EntryLookup;
  maxChunkBytes: number;
  /** Chunk requests (GET, fill) in progress at once, and the bytes of distinct chunks they may hold. */
  maxStreams: number;
  maxBytesInFlight: number;
  metrics: CacheMetrics;
  logger: Logger;
}

/** Disk reads and fills of chunks in progress at once (memory ≈ this × chunk size); more wait their turn. */
const MAX_WORKING = 32;

/**
 * What every route of a node shares: admission under the node's limits, single-flight disk reads
 * of held chunks and single-flight fills from upstream (each verified, stored, handed to every
 * waiter), and how a request says which chunk, of what size, for which file.
 */
export class NodeChunks {
  readonly cache: DiskCache;
  readonly upstream: Upstream | undefined;
  readonly maxChunkBytes: number;
  readonly metrics: CacheMetrics;
  readonly log: Logger;
  /**
   * Runs whole-chunk disk reads and fills, at most MAX_WORKING at once. Only the work itself
   * takes a place: a hit streamed from its verified file, or a request that joins a fill or a read
   * already running, holds no more memory and never waits behind fills.
   */
  readonly working = concurrencyLimit(MAX_WORKING);
  readonly #entries: EntryLookup | undefined;
  readonly #admission: ChunkAdmission;
  readonly #fills = new Map<string, Flight>();
  /** Disk reads of held chunks in progress: concurrent hits of one chunk share one read and one buffer. */
  readonly #reads = new Map<ChunkId, Promise<Buffer | 'corrupt' | undefined>>();

  constructor(options: NodeChunksOptions) {
    this.cache = options.cache;
    this.upstream = options.upstream;
    this.maxChunkBytes = options.maxChunkBytes;
    this.metrics = options.metrics;
    this.log = options.logger;
    this.#entries = options.entries;
    this.#admission = new ChunkAdmission({ maxStreams: options.maxStreams, maxBytes: options.maxBytesInFlight });
    this.metrics.inflight = this.#admission;
  }

  /** The chunk id of the route's `:id`, validated before anything touches the disk. */
  idOf(req: FastifyRequest): ChunkId {
    return parseChunkId((req.params as { id?: unknown }).id);
  }

  /** A chunk size a client gives (`size` query or x-ferry-size), checked against the volume's chunk size. */
  parseSize(raw: unknown): number {
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1 || n > this.maxChunkBytes) {
      throw new InvalidArgumentError(`invalid chunk size ${JSON.stringify(String(raw).slice(0, 20))}: expected 1..${this.maxChunkBytes}`);
    }
    return n;
  }

  /** The size a client says a chunk has (query `size` or header x-ferry-size), if any. */
  wantedSize(req: FastifyRequest): number | undefined {
    const raw = (req.query as { size?: string }).size ?? req.headers['x-ferry-size'];
    return raw === undefined ? undefined : this.parseSize(raw);
  }

  /**
   * Admit a chunk request that may hold `size` bytes; the admission is released when the response
   * ends or its client goes away. Beyond the node's limits: BusyError (503 + Retry-After), nothing held.
   */
  admit(reply: FastifyReply, id: ChunkId, size: number | undefined): void {
    const release = this.#admission.admit(id, this.cache.sizeOf(id) ?? size);
    if (!release) {
      this.metrics.busy.inc();
      throw new BusyError('the node is at its limit of requests in flight');
    }
    reply.raw.once('close', release);
  }

  /** 404 naming what was not found: the node's own disk, or every store of the region behind it too. */
  notHeld(id: ChunkId, readThrough: boolean): NotFoundError {
    return new NotFoundError(readThrough ? `chunk ${id}: not held, and no store of the region has it` : `chunk ${id}: not held`);
  }

  /**
   * Where a missed external chunk sits, when the request names its file and the node knows the
   * region's entries; the lookup refuses a file that does not list the chunk.
   */
  async contextOf(req: FastifyRequest, want: ChunkWant): Promise<ChunkContext | undefined> {
    const path = (req.query as { path?: unknown }).path;
    if (path === undefined || !this.#entries || !this.upstream) return undefined;
    if (typeof path !== 'string') throw new InvalidArgumentError('invalid path: expected one path=');
    return chunkContext(this.#entries, want, path);
  }

  readHeld(id: ChunkId): Promise<Buffer | 'corrupt' | undefined> {
    let running = this.#reads.get(id);
    if (!running) {
      running = this.working(() => this.cache.read(id)).finally(() => this.#reads.delete(id));
      this.#reads.set(id, running);
    }
    return running;
  }

  /**
   * One upstream fetch per chunk however many requests miss it at once (single-flight). The
   * bytes are verified, stored, and handed to every waiter; a failure to store them still serves.
   * Each waiter releases them when done, and the last one gives the buffer back for a later fill
   * (a fresh chunk-sized buffer per fill costs page faults and garbage collections).
   */
  async fill(want: ChunkWant, context?: ChunkContext): Promise<Filled | undefined> {
    // A request that may go to the origin does not wait on one that may not.
    const key = `${want.id}:${want.size}${context ? ':origin' : ''}`;
    let flight = this.#fills.get(key);
    if (!flight) {
      const started: Flight = {
        promise: this.working(() => this.#fetch(want, context)).finally(() => this.#fills.delete(key)),
        holders: 0,
      };
      this.#fills.set(key, started);
      flight = started;
    }
    const held = flight;
    held.holders += 1;
    let filled: { bytes: Buffer; stored: boolean } | undefined;
    try {
      filled = await held.promise;
    } finally {
      if (!filled) held.holders -= 1;
    }
    if (!filled) return undefined;
    const { bytes } = filled;
    let released = false;
    return {
      ...filled,
      release: () => {
        if (released) return;
        released = true;
        held.holders -= 1;
        if (held.holders === 0) recycle(bytes);
      },
    };
  }

  async #fetch(want: ChunkWant, context?: ChunkContext): Promise<{ bytes: Buffer; stored: boolean } | undefined> {
    const { upstream, metrics } = this;
    if (!upstream) return undefined;
    metrics.upstreamFetches.inc();
    let bytes: Buffer | undefined;
    try {
      bytes = await upstream(want, context);
    } catch (err) {
      metrics.upstreamFailures.inc();
      throw err;
    }
    if (!bytes) return undefined;
    // Verified already: the upstream is the readers' engine (`regionUpstream`), which checks every
    // copy against its id before it returns it. Hashing it again here was a second pass over
    // every filled byte.
    metrics.upstreamBytes.inc(bytes.length);
    try {
      if ((await this.cache.put(want.id, bytes)) === 'stored') metrics.stored.inc({ via: 'fill' });
      return { bytes, stored: true };
    } catch (err) {
      this.log.warn({ err, chunk: want.id, reason: messageOf(err) }, 'could not keep a fetched chunk; serving it anyway');
      return { bytes, stored: false };
    }
  }

  /**
   * A held chunk as its verified file (streamed, not hashed), or its bytes (verified now, or read
   * through on a miss when the request gives a size), or undefined.
   */
  async obtain(req: FastifyRequest, id: ChunkId, size: number | undefined): Promise<Obtained | undefined> {
    const { cache, metrics } = this;
    if (cache.has(id)) {
      const opened = await cache.openVerified(id);
      if (opened && opened !== 'unverified') {
        metrics.hits.inc();
        return { file: opened, size: opened.size, via: 'hit' };
      }
      // Not in its verified state (a restart lost the record, or the file changed): hash it first,
      // once for every request that needs it now.
      const held = opened === 'unverified' ? await this.readHeld(id) : undefined;
      if (Buffer.isBuffer(held)) {
        metrics.hits.inc();
        return { bytes: held, size: held.length, via: 'hit' };
      }
      if (held === 'corrupt') metrics.corrupt.inc({ where: 'disk' });
    }
    metrics.misses.inc();
    if (size === undefined || !this.upstream) return undefined;
    const want = { id, size };
    const filled = await this.fill(want, await this.contextOf(req, want));
    return filled ? { bytes: filled.bytes, size: filled.bytes.length, via: 'fill', release: filled.release } : undefined;
  }
}
