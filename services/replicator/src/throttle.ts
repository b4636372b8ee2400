import { Transform, type TransformCallback } from 'node:stream';

/**
 * A token bucket shared by every copy in the process, so `copy.bytesPerSecond` caps the
 * region's total ingress whatever the concurrency. Burst: one second's worth.
 */
export class Throttle {
  readonly #rate: number;
  #tokens: number;
  #last = Date.now();

  constructor(bytesPerSecond: number) {
    this.#rate = bytesPerSecond;
    this.#tokens = bytesPerSecond;
  }

  async take(bytes: number): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
      this.#last = now;
      // A piece larger than the bucket may go once the bucket is full; otherwise wait for tokens.
      if (this.#tokens >= Math.min(bytes, this.#rate)) {
        this.#tokens -= bytes;
        return;
      }
      const wait = ((Math.min(bytes, this.#rate) - this.#tokens) / this.#rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(5, Math.ceil(wait))));
    }
  }

  /** A pass-through that waits for tokens before letting each piece go. */
  stream(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) => {
        this.take(chunk.length).then(() => done(null, chunk), done);
      },
    });
  }
}
