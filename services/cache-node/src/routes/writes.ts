import { ConflictError, CorruptError, InvalidArgumentError, isNativeChunkId } from '@ferry/core';
import { type KnownHashes, verifyChunk } from '@ferry/fetch';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NodeChunks } from '../chunks.js';

/**
 * What changes the bytes a node holds, with the write token (the daemons'; 403 with the read token):
 *   PUT    /chunks/:id   store verified bytes (x-ferry-size or Content-Length required); 422 and
 *          nothing stored when they do not match the id; an external chunk only against the hash
 *          the region recorded for it
 *   DELETE /chunks/:id   204, held or not
 *   POST   /chunks/:id/fill?size=N[&path=P]   read through without sending the bytes back:
 *          {state: held|fetched}
 */
export function writeRoutes(app: FastifyInstance, chunks: NodeChunks, hashes: KnownHashes | undefined): void {
  const { cache, metrics, maxChunkBytes } = chunks;
  const write = { auth: 'write' };

  /** The size an upload declares, if it declares one that can be valid (the handler says what is wrong with the rest). */
  const declared = (req: FastifyRequest): string | undefined => {
    const raw = req.headers['x-ferry-size'] ?? req.headers['content-length'];
    return Array.isArray(raw) ? raw[0] : raw;
  };

  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxChunkBytes }, (_req, body, done) => done(null, body));

  /**
   * An upload holds its body in memory until it is verified and written, so it is admitted like
   * a read, before the body is read: past the node's limits it is answered 503 at once and
   * nothing of it is held.
   */
  const admitUpload = async (req: FastifyRequest, reply: Parameters<NodeChunks['admit']>[0]) => {
    const size = Number(declared(req));
    if (!Number.isSafeInteger(size) || size < 1 || size > maxChunkBytes) return; // the handler says why
    chunks.admit(reply, chunks.idOf(req), size);
  };

  app.put('/chunks/:id', { bodyLimit: maxChunkBytes, config: write, onRequest: admitUpload }, async (req, reply) => {
    const id = chunks.idOf(req);
    const given = declared(req);
    if (given === undefined) return reply.code(411).send({ error: 'INVALID_ARGUMENT', message: 'send x-ferry-size or Content-Length' });
    const size = chunks.parseSize(given);
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const known = isNativeChunkId(id) ? undefined : await hashes?.get(id);
    if (!isNativeChunkId(id) && known === undefined) {
      throw new ConflictError(
        `chunk ${id}: external chunk with no verified hash in this region yet; only a fill from its origin stores it`,
      );
    }
    try {
      await verifyChunk({ id, size }, body, 'upload', known);
    } catch (err) {
      if (err instanceof CorruptError) metrics.corrupt.inc({ where: 'upload' });
      throw err;
    }
    const state = await cache.put(id, body);
    if (state === 'stored') metrics.stored.inc({ via: 'put' });
    return reply.code(state === 'stored' ? 201 : 200).send({ id, state });
  });

  app.delete('/chunks/:id', { config: write }, async (req, reply) => {
    await cache.delete(chunks.idOf(req), 'delete');
    return reply.code(204).send();
  });

  app.post('/chunks/:id/fill', { config: write }, async (req, reply) => {
    const id = chunks.idOf(req);
    const size = chunks.wantedSize(req);
    if (size === undefined) throw new InvalidArgumentError('fill: the chunk size is required (?size=N)');
    if (cache.has(id)) {
      cache.touch(id);
      return { id, state: 'held' };
    }
    const want = { id, size };
    chunks.admit(reply, id, size);
    const filled = chunks.upstream ? await chunks.fill(want, await chunks.contextOf(req, want)) : undefined;
    if (!filled) throw chunks.notHeld(id, chunks.upstream !== undefined);
    filled.release();
    if (!filled.stored) {
      return reply.code(507).send({ error: 'TRANSIENT', message: `chunk ${id}: fetched but could not be kept on disk` });
    }
    return { id, state: 'fetched' };
  });
}
