import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

/**
 * `length` random bytes as a stream, produced as they are read (never held whole), with the
 * sha256 of what was produced once the stream ends.
 */
export function randomStream(length: number, blockSize = 1 << 20): { stream: Readable; sha256: Promise<string> } {
  const hash = createHash('sha256');
  let left = length;
  let resolveDigest: (hex: string) => void = () => {};
  const sha256 = new Promise<string>((r) => {
    resolveDigest = r;
  });
  const stream = new Readable({
    read() {
      if (left === 0) {
        resolveDigest(hash.digest('hex'));
        this.push(null);
        return;
      }
      const block = randomBytes(Math.min(blockSize, left));
      left -= block.length;
      hash.update(block);
      this.push(block);
    },
  });
  return { stream, sha256 };
}

/** sha256 and length of a stream of buffers, read to its end. */
export async function digestStream(stream: AsyncIterable<unknown>): Promise<{ sha256: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  for await (const part of stream) {
    hash.update(part as Buffer);
    length += (part as Buffer).length;
  }
  return { sha256: hash.digest('hex'), length };
}

export async function readStream(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
