import type { Readable } from 'node:stream';

/**
 * The stream cut into buffers of exactly `size` bytes (the last one shorter), filled one at a
 * time. Buffers come from `take` so the caller can recycle them: fresh 16 MiB buffers per part
 * pile up as garbage faster than the GC returns them (a 1 GiB put peaked near 300 MiB RSS).
 */
export async function* fixedParts(stream: Readable, size: number, take: () => Buffer): AsyncGenerator<Buffer> {
  let part: Buffer | undefined;
  let filled = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (let offset = 0; offset < chunk.length; ) {
      part ??= take();
      const copied = chunk.copy(part, filled, offset, Math.min(chunk.length, offset + size - filled));
      filled += copied;
      offset += copied;
      if (filled === size) {
        yield part;
        part = undefined;
        filled = 0;
      }
    }
  }
  if (part && filled > 0) yield part.subarray(0, filled);
}

/** The bytes cut into views of `size` bytes (the last one shorter), without copying. */
export function* sliceParts(bytes: Uint8Array, size: number): Generator<Buffer> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 0; offset < buffer.length; offset += size) yield buffer.subarray(offset, offset + size);
}
