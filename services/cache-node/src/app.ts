import { type Logger, silentLogger } from '@ferry/core';
import type { KnownHashes } from '@ferry/fetch';
import { bearerRoles, errorHandler, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance } from 'fastify';
import { NodeChunks } from './chunks.js';
import type { DiskCache } from './disk-cache.js';
import { type CacheMetrics, createCacheMetrics } from './metrics.js';
import { adminRoutes } from './routes/admin.js';
import { readRoutes } from './routes/reads.js';
import { writeRoutes } from './routes/writes.js';
import type { EntryLookup, Upstream } from './upstream.js';

export interface CacheNodeAppOptions {
  cache: DiskCache;
  /**
   * What the node accepts (Region.credentials.cacheServer()): the read token (readers: GET, HEAD,
   * has, bad, inventory, metrics) and the write token (the daemons: PUT, DELETE and fill too).
   */
  tokens: { read: string; write?: string };
  /** Read-through source for misses that say their size; without it a miss is a 404. */
  upstream?: Upstream;
  /**
   * The region's entries: a miss of an external chunk that names its file (`path=`) is read from
   * the origin that file's entry records. Without it the path is ignored.
   */
  entries?: EntryLookup;
  /**
   * The region's hashes of external chunks: an upload of one is verified against its recorded
   * sha256, and refused while none is recorded (only a fill from its origin establishes it).
   */
  hashes?: KnownHashes;
  /** Largest chunk accepted or fetched (the volume's chunkSize): bounds memory per request. */
  maxChunkBytes: number;
  metrics?: CacheMetrics;
  logger?: Logger;
  /** Serve HTTPS only (`cache.tls` cert and key). */
  tls?: ServerTlsFiles;
  /** Timeouts, header size, streams and bytes in flight (`cache.limits`). */
  limits: CacheNodeLimits;
}

/** A node's limits: the service timeouts, and how much it serves at once before answering 503. */
export interface CacheNodeLimits extends ServerLimits {
  /** Chunk requests (GET, fill) in progress at once. */
  maxStreams: number;
  /** Bytes of distinct chunks held in memory for requests in progress. */
  maxBytesInFlight: number;
}

/**
 * The cache node's HTTP API (no listening: `listen()` does that, tests use `inject()`): the read
 * routes (routes/reads.ts), the write routes (routes/writes.ts) and the node's own (routes/admin.ts).
 * Every route declares the role it needs, and the auth hook reads it from the route fastify matched
 * (so a percent-encoded path is the route it decodes to); a request no route matched needs the read
 * token. Errors are answered from core's one status table. Ids are validated before anything
 * touches the disk.
 */
export function build(options: CacheNodeAppOptions): FastifyInstance {
  const { limits } = options;
  const logger = options.logger ?? silentLogger;
  const chunks = new NodeChunks({
    cache: options.cache,
    ...(options.upstream ? { upstream: options.upstream } : {}),
    ...(options.entries ? { entries: options.entries } : {}),
    maxChunkBytes: options.maxChunkBytes,
    maxStreams: limits.maxStreams,
    maxBytesInFlight: limits.maxBytesInFlight,
    metrics: options.metrics ?? createCacheMetrics(),
    logger,
  });
  const app = serviceApp({
    logger: false,
    exposeHeadRoutes: false,
    bodyLimit: 4 * 2 ** 20,
    log: logger,
    limits,
    ...(options.tls ? { tls: options.tls } : {}),
  });
  app.addHook(
    'onRequest',
    bearerRoles({
      roles: [
        // Asked per request: the node swaps its tokens in place when they are reloaded.
        ['read', () => options.tokens.read],
        ['write', () => options.tokens.write],
      ],
    }),
  );
  app.setErrorHandler(errorHandler(logger));
  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({ error: 'NOT_FOUND', message: 'no such route' });
  });
  readRoutes(app, chunks);
  writeRoutes(app, chunks, options.hashes);
  adminRoutes(app, chunks);
  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
