import { CorruptError, InvalidArgumentError, parseByteRange, parseChunkId, RangeNotSatisfiableError } from '@ferry/core';
import type { FastifyInstance } from 'fastify';
import type { NodeChunks } from '../chunks.js';
import type { OpenChunk } from '../disk-cache.js';

import { sendFileRange } from '../send-file.js';

/** Read size when streaming a chunk file. */
const STREAM_BUFFER = 1 << 20;

/**
 * What readers may do with the read token:
 *   GET  /chunks/:id[?size=N[&path=P]]  bytes (Range supported); with a size (or x-ferry-size) a miss is
 *        read through from the region's stores (and, for an external chunk that names a file listing
 *        it, from that file's origin), verified and kept
 *   HEAD /chunks/:id    200 + length when held, 404 otherwise; no read-through, no recency change
 *   POST /chunks/has    {ids: [...]} → {has: [...]}: which of them are held (residency checks)
 *   POST /chunks/:id/bad  a reader found the copy it got from here wrong: the node hashes its own
 *        copy and evicts it only when wrong → {state: evicted|verified|missing}
 * A read-through stays a read: the node fills itself only from the region's stores, verified.
 */
export function readRoutes(app: FastifyInstance, chunks: NodeChunks): void {
  const { cache, metrics } = chunks;
  const read = { config: { auth: 'read' } };

  app.head('/chunks/:id', read, async (req, reply) => {
    const size = cache.sizeOf(chunks.idOf(req));
    if (size === undefined) return reply.code(404).send();
    return reply.header('content-length', size).header('content-type', 'application/octet-stream').send();
  });

  app.get('/chunks/:id', read, async (req, reply) => {
    const id = chunks.idOf(req);
    const size = chunks.wantedSize(req);
    chunks.admit(reply, id, size);
    const got = await chunks.obtain(req, id, size);
    if (!got) throw chunks.notHeld(id, size !== undefined && chunks.upstream !== undefined);
    // Sent or abandoned, the bytes of a fill go back for reuse (after the last request that got them).
    if (got.release) reply.raw.once('close', got.release);
    const range = parseByteRange(req.headers.range, got.size);
    reply.header('accept-ranges', 'bytes').header('x-ferry-cache', got.via);
    if (range === 'unsatisfiable') {
      await got.file?.handle.close();
      reply.header('content-range', `bytes */${got.size}`);
      throw new RangeNotSatisfiableError(`chunk ${id} has ${got.size} bytes`);
    }
    const { start, end } = range ?? { start: 0, end: got.size - 1 };
    metrics.bytesServed.inc(end - start + 1);
    if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${got.size}`);
    reply.header('content-type', 'application/octet-stream');
    if (got.bytes) return reply.send(range ? got.bytes.subarray(start, end + 1) : got.bytes);
    // From the verified file as it is: no hashing, no whole-chunk buffer, ranges read only their
    // bytes; a small range is one read.
    const file = got.file as OpenChunk;
    if (end - start < STREAM_BUFFER) {
      try {
        const { buffer, bytesRead } = await file.handle.read(Buffer.allocUnsafe(end - start + 1), 0, end - start + 1, start);
        if (bytesRead !== buffer.length) throw new CorruptError(`chunk ${id}: its file is shorter than when it was verified`);
        return reply.send(buffer);
      } finally {
        await file.handle.close();
      }
    }
    reply.header('content-length', end - start + 1);
    await sendFileRange(reply, file, start, end);
    return reply;
  });

  app.post('/chunks/:id/bad', read, async (req) => {
    const id = chunks.idOf(req);
    // A reader's word is not enough to evict: the node hashes its own copy and drops it only if wrong.
    const state = await chunks.working(() => cache.check(id));
    if (state === 'corrupt') metrics.corrupt.inc({ where: 'reported' });
    chunks.log.warn({ chunk: id, state }, 'a reader reported a bad copy of a chunk from here');
    return { id, state: state === 'corrupt' ? 'evicted' : state };
  });

  app.post('/chunks/has', read, async (req) => {
    const ids = (req.body as { ids?: unknown } | undefined)?.ids;
    if (!Array.isArray(ids) || ids.length > 10_000) throw new InvalidArgumentError('has: expected {"ids": [...]} with at most 10000 ids');
    return { has: ids.map((id) => parseChunkId(id)).filter((id) => cache.has(id)) };
  });
}
