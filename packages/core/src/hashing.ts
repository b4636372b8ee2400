import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CorruptError } from './errors.js';
import { type HashSession, hashPool } from './hash-pool.js';

/** sha256 on the calling thread: for small inputs (names, test fixtures), never for chunks. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of bytes on the process's hash pool (off the event loop; shared buffers are not copied). */
export function sha256Of(bytes: Uint8Array): Promise<string> {
  return hashPool().sha256(bytes);
}

/** The sha256 and length of a stream of bytes, hashed on the hash pool as they arrive (memory stays at the pool's staging). */
export async function sha256OfStream(body: AsyncIterable<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const session = hashPool().session();
  let bytes = 0;
  try {
    for await (const piece of body) {
      bytes += piece.length;
      await session.update(piece);
    }
  } catch (err) {
    session.abort();
    throw err;
  }
  return { sha256: await session.digest(), bytes };
}

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

/**
 * Pass-through that hashes what flows and, at the end, fails the stream with CorruptError when
 * the bytes do not match the expected digest and length. Bytes are checked before the consumer
 * sees the end of the stream, so a store `put` fed by it never commits corrupt data. The hash
 * runs on the hash pool: the bytes pass on at once and the thread catches up by the end.
 */
export class VerifyingStream extends Transform {
  #session: HashSession | undefined;
  readonly #hashing: boolean;
  #bytes = 0;

  constructor(private readonly expected: VerifyingStreamOptions) {
    super();
    this.#hashing = expected.sha256 !== undefined || expected.settle !== undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.expected.length !== undefined && this.#bytes > this.expected.length) {
      done(new CorruptError(`${this.expected.what}: more than the expected ${this.expected.length} bytes`));
      return;
    }
    if (!this.#hashing) {
      done(null, chunk);
      return;
    }
    this.#session ??= hashPool().session();
    this.push(chunk);
    // Waits only while the thread is far behind (bounded staging), so memory stays bounded.
    this.#session.update(chunk).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    const { sha256, length, what, settle } = this.expected;
    if (length !== undefined && this.#bytes !== length) {
      done(new CorruptError(`${what}: got ${this.#bytes} bytes, expected ${length}`));
      return;
    }
    if (!this.#hashing) {
      done();
      return;
    }
    const session = this.#session ?? hashPool().session();
    this.#session = undefined;
    session
      .digest()
      .then(async (actual) => {
        if (sha256 !== undefined) {
          if (actual !== sha256)
            throw new CorruptError(`${what}: sha256 mismatch (got ${actual.slice(0, 12)}…, expected ${sha256.slice(0, 12)}…)`);
          return;
        }
        await settle?.(actual);
      })
      .then(
        () => done(),
        (err: unknown) => done(err instanceof Error ? err : new CorruptError(`${what}: ${String(err)}`)),
      );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#session?.abort();
    this.#session = undefined;
    callback(err);
  }
}
