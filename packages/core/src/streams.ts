import type { Readable } from 'node:stream';

/**
 * A body read into one Buffer, `limit` bytes at most plus the one chunk that goes past it: one
 * byte over already proves the copy wrong, so reading stops there and the body is destroyed.
 */
export async function readUpTo(body: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of body) {
    parts.push(part as Buffer);
    length += (part as Buffer).length;
    if (length > limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(parts, length);
}
