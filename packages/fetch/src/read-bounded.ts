/** Buffers of at most this many bytes are allocated before any byte arrives; larger limits grow. */
const UPFRONT = 16 * 2 ** 20;

/**
 * Chunk buffers given back by their last user (`recycle`), by capacity, for the next read. A
 * fresh multi-MiB buffer costs page faults to fill and garbage collections to free; a reused one
 * costs neither. Bounded in bytes.
 */
const spare = new Map<number, ArrayBuffer[]>();
let spareBytes = 0;
const SPARE_LIMIT = 128 * 2 ** 20;

function allocate(capacity: number): Buffer {
  const reused = spare.get(capacity)?.pop();
  if (reused) {
    spareBytes -= capacity;
    return Buffer.from(reused);
  }
  // Never from Node's shared slab: the buffer's memory must be its own to be reused. Not a
  // SharedArrayBuffer either: V8 does not count those towards collection, so under load (64
  // readers of a 1 GiB file through the gateway) unreused ones piled up to 22 GiB of RSS before
  // a collection freed them. The hash threads copy these through their staging slots instead.
  return Buffer.allocUnsafeSlow(capacity);
}

/**
 * Give a buffer `readBounded` made back for reuse. Only its last user may: nothing may read or
 * keep `bytes` afterwards.
 */
export function recycle(bytes: Buffer): void {
  const memory = bytes.buffer;
  if (!(memory instanceof ArrayBuffer) || memory.byteLength === 0 || spareBytes + memory.byteLength > SPARE_LIMIT) return;
  const list = spare.get(memory.byteLength) ?? [];
  if (list.includes(memory)) return;
  list.push(memory);
  spare.set(memory.byteLength, list);
  spareBytes += memory.byteLength;
}

/**
 * The buffer `readBounded` starts with for a body of at most `limit` bytes (one more, to see a
 * body too long): give it to a store's `get` as `into` and to `readBounded`, and the bytes land in
 * it without a copy when the store can read in place.
 */
export function chunkBuffer(limit: number): Buffer {
  return allocate(Math.min(limit, UPFRONT) + 1);
}

/**
 * A body being gathered into one buffer, `limit` bytes at most plus one: one byte over already
 * proves a copy wrong, so `push` says to stop there. A chunk-sized limit is one allocation (the
 * chunk is held once, not as parts plus their join), reused when its last user recycled it; a
 * large limit for a body of unknown size starts at 16 MiB and doubles.
 */
export class BoundedBody {
  readonly #limit: number;
  #out: Buffer;
  #length = 0;

  constructor(limit: number, into: Buffer = chunkBuffer(limit)) {
    this.#limit = limit;
    this.#out = into;
  }

  /** Add the next piece; false once past the limit (read no more). */
  push(piece: Uint8Array): boolean {
    const take = Math.min(this.#limit + 1 - this.#length, piece.length);
    if (piece.buffer === this.#out.buffer && piece.byteOffset === this.#out.byteOffset + this.#length) {
      // Read in place (a store that honoured `into`): nothing to copy.
      this.#length += take;
      return this.#length <= this.#limit;
    }
    if (this.#length + take > this.#out.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.min(this.#limit + 1, Math.max(this.#out.length * 2, this.#length + take)));
      this.#out.copy(bigger, 0, 0, this.#length);
      this.#out = bigger;
    }
    this.#out.set(take === piece.length ? piece : piece.subarray(0, take), this.#length);
    this.#length += take;
    return this.#length <= this.#limit;
  }

  /** The bytes gathered. */
  get bytes(): Buffer {
    return this.#out.subarray(0, this.#length);
  }

  /** The read failed: its buffer goes back for a later one. Nothing may use `bytes` afterwards. */
  discard(): void {
    recycle(this.#out);
  }
}

/** Read a body into one buffer with `BoundedBody`; past the limit the body is destroyed. */
export async function readBounded(
  body: AsyncIterable<unknown> & { destroy?: () => void },
  limit: number,
  into: Buffer = chunkBuffer(limit),
): Promise<Buffer> {
  const gathered = new BoundedBody(limit, into);
  for await (const part of body) {
    if (!gathered.push(part as Buffer)) {
      body.destroy?.();
      break;
    }
  }
  return gathered.bytes;
}
