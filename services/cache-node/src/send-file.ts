import type { FastifyReply } from 'fastify';
import type { OpenChunk } from './disk-cache.js';

/** Read buffers reused across responses: a fresh one per read costs page faults and collections. */
const spare: Buffer[] = [];
const KEEP = 64;
const BUFFER = 1 << 20;

const take = () => spare.pop() ?? Buffer.allocUnsafeSlow(BUFFER);
const give = (b: Buffer) => {
  if (spare.length < KEEP) spare.push(b);
};

/**
 * Send bytes `start..end` of a verified chunk file: positional reads into two reused buffers, one
 * being read while the other is written to the socket. The reply is taken over (headers as set
 * on it); the file is closed at the end. A client that goes away stops the reads.
 */
export async function sendFileRange(reply: FastifyReply, file: OpenChunk, start: number, end: number): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
  const buffers = [take(), take()];
  /** The write of each buffer in flight, which must finish before the buffer is filled again. */
  const writing: Array<Promise<void> | undefined> = [undefined, undefined];
  let gone = false;
  res.once('close', () => {
    gone = true;
  });
  try {
    for (let at = start, i = 0; at <= end && !gone; i ^= 1) {
      await writing[i];
      const buf = buffers[i] as Buffer;
      const want = Math.min(buf.length, end - at + 1);
      const { bytesRead } = await file.handle.read(buf, 0, want, at);
      if (bytesRead !== want) throw new Error('chunk file shorter than when it was verified');
      at += want;
      const part = want === buf.length ? buf : buf.subarray(0, want);
      writing[i] = new Promise<void>((resolve) => res.write(part, () => resolve()));
    }
    await Promise.all(writing);
    if (!gone) res.end();
  } catch {
    res.destroy();
  } finally {
    await file.handle.close().catch(() => {});
    // A buffer whose write never completed (the socket was destroyed) is not reused.
    if (!gone) for (const b of buffers) give(b);
  }
}
