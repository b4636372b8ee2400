import type { ChunkId } from '@ferry/core';

export interface ChunkAdmissionOptions {
  /** Chunk requests (GET, fill) in progress at once. */
  maxStreams: number;
  /** Bytes of distinct chunks held in memory for those requests. */
  maxBytes: number;
}

/**
 * A node's global cap on what its requests hold. Requests for the same chunk share one buffer
 * (single-flight reads and fills), so bytes are counted once per distinct chunk in flight: a
 * thousand readers of one chunk cost one chunk of memory and pass, while many different chunks
 * at once are refused beyond `maxBytes`. Refused requests are answered 503 with Retry-After at
 * once; they hold nothing while the client waits.
 */
export class ChunkAdmission {
  readonly #o: ChunkAdmissionOptions;
  readonly #held = new Map<ChunkId, { refs: number; bytes: number }>();
  #streams = 0;
  #bytes = 0;

  constructor(options: ChunkAdmissionOptions) {
    this.#o = options;
  }

  get streams(): number {
    return this.#streams;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Admit a request for chunk `id` that may hold `size` bytes (undefined: a request that can only
   * answer 404); returns the release to call once its response is over, or undefined when busy.
   */
  admit(id: ChunkId, size: number | undefined): (() => void) | undefined {
    if (this.#streams >= this.#o.maxStreams) return undefined;
    const held = this.#held.get(id);
    // One chunk larger than the whole budget still runs, alone; a chunk already held costs only what it lacks.
    const extra = size === undefined ? 0 : Math.max(0, Math.min(size, this.#o.maxBytes) - (held?.bytes ?? 0));
    if (this.#bytes + extra > this.#o.maxBytes) return undefined;
    this.#streams += 1;
    this.#bytes += extra;
    if (held) {
      held.refs += 1;
      held.bytes += extra;
    } else this.#held.set(id, { refs: 1, bytes: extra });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#streams -= 1;
      const entry = this.#held.get(id);
      if (!entry) return;
      entry.refs -= 1;
      if (entry.refs > 0) return;
      this.#held.delete(id);
      this.#bytes -= entry.bytes;
    };
  }
}
