import { InvalidArgumentError, parseChunkId } from '@ferry/core';
import type { FastifyInstance } from 'fastify';
import type { NodeChunks } from '../chunks.js';

/**
 * The node itself: GET /healthz (open: probes carry no token), GET /metrics and
 * GET /inventory?cursor=&limit= (held ids in ascending order, a page at a time) with the read token.
 */
export function adminRoutes(app: FastifyInstance, chunks: NodeChunks): void {
  const { cache, metrics } = chunks;

  app.get('/healthz', { config: { auth: 'open' } }, async () => ({ ok: true }));

  app.get('/metrics', { config: { auth: 'read' } }, async (_req, reply) => {
    metrics.used.set(cache.used);
    metrics.capacity.set(cache.capacity);
    metrics.chunks.set(cache.count);
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.get('/inventory', { config: { auth: 'read' } }, async (req) => {
    const q = req.query as { cursor?: string; limit?: string };
    const limit = q.limit === undefined ? 1000 : Number(q.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new InvalidArgumentError('invalid limit: expected 1..10000');
    const cursor = q.cursor ? parseChunkId(q.cursor) : undefined;
    return { ...cache.page(cursor, limit), used: cache.used, capacity: cache.capacity };
  });
}
