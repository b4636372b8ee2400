import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CorruptError } from './errors.js';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Pass-through that hashes what flows and, at the end, fails the stream with CorruptError when
 * the bytes do not match the expected digest and length. Bytes are checked before the consumer
 * sees the end of the stream, so a store `put` fed by it never commits corrupt data.
 */
export interface VerifyingStreamOptions {
  sha256?: string;
  length?: number;
  /** Names the bytes in errors. */
  what: string;
  /**
   * Called with the sha256 of bytes whose digest was not known, after every other check passed
   * and before the stream ends; a rejection fails the stream (so a put fed by it never commits).
   */
  settle?: (sha256: string) => Promise<void>;
}

export class VerifyingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  readonly #hashing: boolean;
  #bytes = 0;

  constructor(private readonly expected: VerifyingStreamOptions) {
    super();
    this.#hashing = expected.sha256 !== undefined || expected.settle !== undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#hashing) this.#hash.update(chunk);
    if (this.expected.length !== undefined && this.#bytes > this.expected.length) {
      done(new CorruptError(`${this.expected.what}: more than the expected ${this.expected.length} bytes`));
      return;
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const { sha256, length, what } = this.expected;
    if (length !== undefined && this.#bytes !== length) {
      done(new CorruptError(`${what}: got ${this.#bytes} bytes, expected ${length}`));
      return;
    }
    if (sha256 !== undefined) {
      const actual = this.#hash.digest('hex');
      if (actual !== sha256) {
        done(new CorruptError(`${what}: sha256 mismatch (got ${actual.slice(0, 12)}…, expected ${sha256.slice(0, 12)}…)`));
        return;
      }
    } else if (this.expected.settle) {
      this.expected.settle(this.#hash.digest('hex')).then(
        () => done(),
        (err: unknown) => done(err instanceof Error ? err : new CorruptError(`${what}: ${String(err)}`)),
      );
      return;
    }
    done();
  }
}
