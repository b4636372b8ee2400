import {
  type ChunkRef,
  CorruptError,
  isNativeChunkId,
  isRetryable,
  type Logger,
  messageOf,
  NotFoundError,
  PreconditionFailedError,
  silentLogger,
  UnavailableError,
} from '@ferry/core';
import { MemoryCache } from './memory-cache.js';
import type { ChunkContext } from './origin.js';
import { recycle } from './read-bounded.js';
import type { Tier } from './tier.js';
import { type KnownHashes, verifyAndRecord } from './verify.js';

export interface TierStats {
  /** Bytes served per tier name (verified): the egress bill. `memory` counts process-cache hits. */
  bytes: Record<string, number>;
  /** Chunks served per tier. */
  chunks: Record<string, number>;
  /** Copies found corrupt or unreadable per tier. */
  bad: Record<string, number>;
}

export interface ChunkReaderOptions {
  /** Nearest first; the memory cache is in front of all of them. */
  tiers: Tier[];
  /** Bytes of verified chunks kept in process memory (0: none). */
  memoryBytes?: number;
  /** Of `memoryBytes`, how much chunks asked for once may hold (default an eighth); read-ahead waits there. */
  memoryProbationBytes?: number;
  /**
   * Tiers from this index on are fallbacks outside the region (the source, an origin): a chunk
   * served from one of them is reported to `onFallback` so the region can copy it (backfill).
   */
  fallbackFrom?: number;
  onFallback?: (ref: ChunkRef, context: ChunkContext | undefined, tier: string) => void;
  /**
   * The region's hashes of external chunks: every copy is checked against a known one, and with
   * `record` the first copy an authoritative tier (the origin) serves records it.
   */
  hashes?: KnownHashes;
  /** Told of every copy a tier served that failed verification (metrics). */
  onBadCopy?: (tier: string, err: unknown) => void;
  logger?: Logger;
}

/**
 * Fetches chunks through memory and then the tiers in order, verifying every copy: a missing or
 * corrupt copy is counted against its tier and the next tier is tried. Concurrent requests for one
 * chunk share one fetch (single-flight).
 */
export class ChunkReader {
  readonly stats: TierStats = { bytes: { memory: 0 }, chunks: { memory: 0 }, bad: {} };
  readonly #tiers: Tier[];
  readonly #memory: MemoryCache | undefined;
  readonly #log: Logger;
  readonly #inflight = new Map<string, { promise: Promise<Buffer>; waiters: number }>();
  /** Verified chunks handed to exactly one caller and kept nowhere else: `release` may reuse them. */
  readonly #sole = new WeakSet<Buffer>();
  readonly #fallbackFrom: number;
  readonly #onFallback: ChunkReaderOptions['onFallback'];
  readonly #hashes: KnownHashes | undefined;
  readonly #onBadCopy: ChunkReaderOptions['onBadCopy'];

  constructor(options: ChunkReaderOptions) {
    this.#tiers = options.tiers;
    this.#memory = options.memoryBytes
      ? new MemoryCache(
          options.memoryBytes,
          options.memoryProbationBytes === undefined ? {} : { probationBytes: options.memoryProbationBytes },
        )
      : undefined;
    this.#log = options.logger ?? silentLogger;
    this.#fallbackFrom = options.fallbackFrom ?? options.tiers.length;
    this.#onFallback = options.onFallback;
    this.#hashes = options.hashes;
    this.#onBadCopy = options.onBadCopy;
    for (const tier of this.#tiers) {
      this.stats.bytes[tier.name] = 0;
      this.stats.chunks[tier.name] = 0;
      this.stats.bad[tier.name] = 0;
    }
  }

  /** Chunk fetches that keep every tier's servers busy (at least 1). */
  get parallelism(): number {
    return Math.max(1, ...this.#tiers.map((t) => t.parallelism?.() ?? 0));
  }

  get tierNames(): string[] {
    return ['memory', ...this.#tiers.map((t) => t.name)];
  }

  fetch(ref: ChunkRef, context?: ChunkContext): Promise<Buffer> {
    const cached = this.#memory?.get(ref.id);
    if (cached) {
      this.#count('memory', cached.length);
      return Promise.resolve(cached);
    }
    // A fetch without its file cannot reach an origin, so one with it must not wait on it.
    const key = context ? ref.id : `${ref.id} without context`;
    const running = this.#inflight.get(key);
    if (running) {
      running.waiters += 1;
      return running.promise;
    }
    const flight = { promise: this.#fetchThroughTiers(ref, context), waiters: 1 };
    flight.promise = flight.promise.then(
      (bytes) => {
        this.#inflight.delete(key);
        // Handed to one caller and not kept in memory: that caller may give it back.
        if (flight.waiters === 1 && !this.#memory?.has(ref.id)) this.#sole.add(bytes);
        return bytes;
      },
      (err: unknown) => {
        this.#inflight.delete(key);
        throw err;
      },
    );
    this.#inflight.set(key, flight);
    return flight.promise;
  }

  /**
   * The caller is done with bytes `fetch` returned: when nobody else got them, their buffer is
   * reused for a later chunk (no page faults, no garbage). Nothing may use `bytes` afterwards.
   */
  release(bytes: Buffer): void {
    if (this.#sole.delete(bytes)) recycle(bytes);
  }

  #count(tier: string, bytes: number): void {
    this.stats.bytes[tier] = (this.stats.bytes[tier] ?? 0) + bytes;
    this.stats.chunks[tier] = (this.stats.chunks[tier] ?? 0) + 1;
  }

  /** The sha256 a copy must have beyond what its id says (external chunks whose hash the region knows). */
  async #knownHash(ref: ChunkRef): Promise<string | undefined> {
    if (isNativeChunkId(ref.id) || !this.#hashes) return undefined;
    // A lookup that fails fails the read: serving unverifiable bytes is not a fallback.
    return this.#hashes.get(ref.id);
  }

  /** Verify a tier's copy; the first copy of an external chunk from an authoritative tier records its hash. */
  async #verify(ref: ChunkRef, bytes: Buffer, tier: Tier, known: string | undefined): Promise<void> {
    await verifyAndRecord(ref, bytes, tier.name, known, tier.authoritative ? this.#hashes : undefined);
  }

  async #fetchThroughTiers(ref: ChunkRef, context: ChunkContext | undefined): Promise<Buffer> {
    const failures: string[] = [];
    let lastFailure: unknown;
    let changedOrigin: PreconditionFailedError | undefined;
    let known: { sha256: string | undefined } | undefined;
    /** A tier answered with something other than "cannot be reached now": a bad copy, a refusal. */
    let notJustUnreachable = false;
    for (const [index, tier] of this.#tiers.entries()) {
      let bytes: Buffer | undefined;
      try {
        bytes = await tier.get(ref, context);
        if (bytes === undefined) continue;
        known ??= { sha256: await this.#knownHash(ref) };
        try {
          await this.#verify(ref, bytes, tier, known.sha256);
        } catch (err) {
          // A wrong copy is the server's to drop; the next tier serves this read.
          if (err instanceof CorruptError) tier.reportBad?.(ref);
          throw err;
        }
      } catch (err) {
        if (known === undefined && bytes !== undefined) throw err;
        if (tier.isFatal?.(err)) throw err;
        this.stats.bad[tier.name] = (this.stats.bad[tier.name] ?? 0) + 1;
        failures.push(`${tier.name}: ${messageOf(err)}`);
        lastFailure = err;
        if (err instanceof PreconditionFailedError) {
          // Not a bad copy but a changed origin: the caller gets this error itself, once.
          changedOrigin = err;
          this.#log.debug({ chunk: ref.id, tier: tier.name }, 'origin object changed since import');
        } else this.#log.warn({ err, chunk: ref.id, tier: tier.name }, 'chunk copy unusable; trying the next tier');
        if (err instanceof CorruptError) {
          notJustUnreachable = true;
          this.#onBadCopy?.(tier.name, err);
        } else if (!isRetryable(err)) notJustUnreachable = true;
        continue;
      }
      this.#count(tier.name, bytes.length);
      this.#memory?.set(ref.id, bytes);
      if (index >= this.#fallbackFrom) this.#onFallback?.(ref, context, tier.name);
      return bytes;
    }
    // An origin object that changed since import is its own, precise error.
    if (changedOrigin) throw changedOrigin;
    const where = context ? ` of ${context.entry.path}` : '';
    if (failures.length > 0) {
      // No copy was wrong, a tier could only not be reached (the source during an outage): that
      // is worth a retry, not a corrupt file.
      if (!notJustUnreachable && isRetryable(lastFailure)) {
        throw new UnavailableError(`chunk ${ref.id}${where}: no tier could serve it now (${failures.join('; ')})`, { cause: lastFailure });
      }
      // The cause tells a caller whether the last tier was unreachable rather than wrong.
      throw new CorruptError(`chunk ${ref.id}${where}: no tier has a good copy (${failures.join('; ')})`, { cause: lastFailure });
    }
    throw new NotFoundError(`chunk ${ref.id}${where}: not found in ${this.#tiers.map((t) => t.name).join(', ')}`);
  }
}
