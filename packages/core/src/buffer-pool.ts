import { InvalidArgumentError } from './errors.js';
import { sharedBuffer } from './hash-pool.js';

/** A buffer lent by a BufferPool; `release()` once per holder given to `hold`. */
export interface PooledBuffer {
  /** The bytes asked for (a view of the pooled buffer). */
  readonly bytes: Buffer;
  /** One more holder: the buffer returns to the pool when every holder has released it. */
  hold(): void;
  release(): void;
}

/**
 * Reusable chunk-sized buffers backed by SharedArrayBuffers (so hashing threads read them without
 * a copy), instead of a fresh multi-MiB allocation per chunk. Taking never waits: the callers'
 * own concurrency bounds how many are out at once; the pool only keeps up to `keep` returned
 * buffers for the next taker, so a holder that forgets to release costs a garbage collection,
 * never a stall.
 */
export class BufferPool {
  readonly bufferSize: number;
  readonly #keep: number;
  readonly #free: Buffer[] = [];

  constructor(options: { bufferSize: number; keep: number }) {
    if (!Number.isSafeInteger(options.bufferSize) || options.bufferSize < 1) {
      throw new InvalidArgumentError(`invalid buffer size ${options.bufferSize}`);
    }
    this.bufferSize = options.bufferSize;
    this.#keep = Math.max(0, Math.floor(options.keep));
  }

  /** Buffers waiting to be taken again. */
  get idle(): number {
    return this.#free.length;
  }

  /** A buffer of `length` bytes (at most `bufferSize`), contents undefined, held once. */
  take(length: number = this.bufferSize): PooledBuffer {
    if (length > this.bufferSize) throw new InvalidArgumentError(`buffer of ${length} bytes asked from a pool of ${this.bufferSize}`);
    const whole = this.#free.pop() ?? sharedBuffer(this.bufferSize);
    let holders = 1;
    return {
      bytes: whole.subarray(0, length),
      hold: () => {
        holders += 1;
      },
      release: () => {
        holders -= 1;
        if (holders === 0 && this.#free.length < this.#keep) this.#free.push(whole);
      },
    };
  }
}
