import {
  type ChunkRef,
  CorruptError,
  chunkDigest,
  isNativeChunkId,
  type Logger,
  messageOf,
  NotFoundError,
  sha256Hex,
  silentLogger,
} from '@ferry/core';
import type { Tier } from './tier.js';

export interface TierStats {
  /** Bytes this tier served (verified), per tier name: the egress bill. */
  bytes: Record<string, number>;
  /** Chunks served per tier. */
  chunks: Record<string, number>;
  /** Copies found corrupt or unreadable per tier. */
  bad: Record<string, number>;
}

export interface ChunkReaderOptions {
  /** Nearest first; the last one is the fallback of last resort. */
  tiers: Tier[];
  logger?: Logger;
  /** Called when a chunk had to come from a tier after the first `localTiers` (backfill hook). */
  onFallback?: (ref: ChunkRef, tier: string) => void;
  /** How many leading tiers count as local (default: all but the last). */
  localTiers?: number;
}

/** Check bytes against a chunk id: sha256 for native chunks, length for external ones. */
export function verifyChunk(ref: ChunkRef, bytes: Buffer, where: string): void {
  if (bytes.length !== ref.size) throw new CorruptError(`chunk ${ref.id} from ${where}: ${bytes.length} bytes, expected ${ref.size}`);
  if (isNativeChunkId(ref.id) && sha256Hex(bytes) !== chunkDigest(ref.id)) {
    throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  }
}

/**
 * Fetches chunks through the tiers in order, verifying every copy: a missing or corrupt copy is
 * counted against its tier and the next tier is tried. Concurrent requests for one chunk share
 * one fetch (single-flight).
 */
export class ChunkReader {
  readonly stats: TierStats = { bytes: {}, chunks: {}, bad: {} };
  readonly #tiers: Tier[];
  readonly #log: Logger;
  readonly #inflight = new Map<string, Promise<Buffer>>();
  readonly #onFallback: ChunkReaderOptions['onFallback'];
  readonly #localTiers: number;

  constructor(options: ChunkReaderOptions) {
    this.#tiers = options.tiers;
    this.#log = options.logger ?? silentLogger;
    this.#onFallback = options.onFallback;
    this.#localTiers = options.localTiers ?? Math.max(0, options.tiers.length - 1);
    for (const tier of this.#tiers) {
      this.stats.bytes[tier.name] = 0;
      this.stats.chunks[tier.name] = 0;
      this.stats.bad[tier.name] = 0;
    }
  }

  fetch(ref: ChunkRef): Promise<Buffer> {
    const running = this.#inflight.get(ref.id);
    if (running) return running;
    const promise = this.#fetchThroughTiers(ref).finally(() => this.#inflight.delete(ref.id));
    this.#inflight.set(ref.id, promise);
    return promise;
  }

  async #fetchThroughTiers(ref: ChunkRef): Promise<Buffer> {
    const failures: string[] = [];
    for (const [index, tier] of this.#tiers.entries()) {
      let bytes: Buffer | undefined;
      try {
        bytes = await tier.get(ref);
        if (bytes === undefined) continue;
        verifyChunk(ref, bytes, tier.name);
      } catch (err) {
        this.stats.bad[tier.name] = (this.stats.bad[tier.name] ?? 0) + 1;
        failures.push(`${tier.name}: ${messageOf(err)}`);
        this.#log.warn({ err, chunk: ref.id, tier: tier.name }, 'chunk copy unusable; trying the next tier');
        continue;
      }
      this.stats.bytes[tier.name] = (this.stats.bytes[tier.name] ?? 0) + bytes.length;
      this.stats.chunks[tier.name] = (this.stats.chunks[tier.name] ?? 0) + 1;
      if (index >= this.#localTiers) this.#onFallback?.(ref, tier.name);
      return bytes;
    }
    const detail = failures.length > 0 ? ` (${failures.join('; ')})` : '';
    throw failures.length > 0
      ? new CorruptError(`chunk ${ref.id}: no tier has a good copy${detail}`)
      : new NotFoundError(`chunk ${ref.id}: not found in ${this.#tiers.map((t) => t.name).join(', ')}`);
  }
}
