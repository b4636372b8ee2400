/**
 * Buffers made here and handed to one caller, who holds the only reference: the chunk engine may
 * move such a buffer to a hashing thread and back instead of copying it (`verifiedChunk`).
 */
const sole = new WeakSet<Buffer>();

/** Whether `bytes` came from `readBounded` and was not taken yet; taking it forgets it. */
export function takeSole(bytes: Buffer): boolean {
  return sole.delete(bytes);
}

/** Buffers of at most this many bytes are allocated before any byte arrives; larger limits grow. */
const UPFRONT = 16 * 2 ** 20;

/**
 * Read a body into one buffer, `limit` bytes at most plus one: one byte over already proves a
 * copy wrong, so reading stops there and the body is destroyed. A chunk-sized limit is one
 * allocation (the chunk is held once, not as parts plus their join); a large limit for a body of
 * unknown size starts at 16 MiB and doubles.
 */
export async function readBounded(body: AsyncIterable<unknown> & { destroy?: () => void }, limit: number): Promise<Buffer> {
  // Never from Node's shared slab: the buffer's memory must be its own to be moved.
  let out = Buffer.allocUnsafeSlow(Math.min(limit, UPFRONT) + 1);
  let length = 0;
  for await (const part of body) {
    const buf = part as Buffer;
    const take = Math.min(limit + 1 - length, buf.length);
    if (length + take > out.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.min(limit + 1, Math.max(out.length * 2, length + take)));
      out.copy(bigger, 0, 0, length);
      out = bigger;
    }
    buf.copy(out, length, 0, take);
    length += take;
    if (length > limit) {
      body.destroy?.();
      break;
    }
  }
  const result = out.subarray(0, length);
  sole.add(result);
  return result;
}
