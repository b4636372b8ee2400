import {
  type ChunkId,
  ConflictError,
  CorruptError,
  concurrencyLimit,
  type ErrorCode,
  InvalidArgumentError,
  isFerryError,
  isNativeChunkId,
  type Logger,
  messageOf,
  parseChunkId,
  silentLogger,
} from '@ferry/core';
import { type ChunkContext, type KnownHashes, verifyChunk } from '@ferry/fetch';
import { bearerRoles, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ChunkAdmission } from './admission.js';
import type { DiskCache, OpenChunk } from './disk-cache.js';
import { type CacheMetrics, createCacheMetrics } from './metrics.js';
import { sendFileRange } from './send-file.js';
import { type ChunkWant, chunkContext, type EntryLookup, type Upstream } from './upstream.js';

export interface CacheNodeAppOptions {
  cache: DiskCache;
  /** Token of readers (`regions.<r>.cache.readToken`): GET, HEAD, has, inventory, metrics. */
  readToken?: string;
  /** Token of the daemons (`cache.writeToken`): PUT, DELETE and fill too. */
  writeToken?: string;
  /** One token for both roles (the deprecated `cache.token`). */
  token?: string;
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
  /** Chunk reads and fills in progress at once (memory ≈ this × chunk size); more wait their turn. Default 32. */
  maxInflight?: number;
  metrics?: CacheMetrics;
  logger?: Logger;
  /** Serve HTTPS only (`cache.tls` cert and key). */
  tls?: ServerTlsFiles;
  /** Timeouts, header size, streams and bytes in flight (`cache.limits`). */
  limits?: CacheNodeLimits;
}

/** A node's limits: the service timeouts, and how much it serves at once before answering 503. */
export interface CacheNodeLimits extends Partial<ServerLimits> {
  /** Chunk requests (GET, fill) in progress at once. */
  maxStreams?: number;
  /** Bytes of distinct chunks held in memory for requests in progress. */
  maxBytesInFlight?: number;
}

/** What a chunk request is served from: the verified file, or bytes in memory. */
interface Obtained {
  file?: OpenChunk;
  bytes?: Buffer;
  size: number;
  via: 'hit' | 'fill';
}

/** Read size when streaming a chunk file. */
const STREAM_BUFFER = 1 << 20;

const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  INVALID_PATH: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  PRECONDITION_FAILED: 412,
  RANGE_NOT_SATISFIABLE: 416,
  CORRUPT: 422,
  CONFLICT: 409,
  UNAVAILABLE: 503,
  TRANSIENT: 503,
  ACCESS_DENIED: 502,
};

/** `bytes=a-b`, `bytes=a-`, `bytes=-n`; anything else (multiple ranges, garbage) is ignored, as RFC 9110 allows. */
export function parseRange(header: string | undefined, length: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    return suffix === 0 || length === 0 ? 'unsatisfiable' : { start: Math.max(0, length - suffix), end: length - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Number.POSITIVE_INFINITY : Number(m[2]);
  if (last < start) return undefined;
  if (start >= length) return 'unsatisfiable';
  return { start, end: Math.min(last, length - 1) };
}

/**
 * What a request needs: nothing for the health probe, the write token for what changes the bytes
 * a node holds (PUT, DELETE, fill), the read token for the rest. A read-through on GET stays a
 * read: the node fills itself from the region's stores, and the bytes it keeps are verified.
 */
function requiredRole(req: FastifyRequest, path: string): 'read' | 'write' | undefined {
  if (req.method === 'GET' && path === '/healthz') return undefined;
  if (req.method === 'PUT' || req.method === 'DELETE') return 'write';
  if (req.method === 'POST' && path.endsWith('/fill')) return 'write';
  return 'read';
}

/**
 * The cache node's HTTP API (no listening: `listen()` does that, tests use `inject()`):
 *   GET    /chunks/:id[?size=N[&path=P]]  bytes (Range supported); with a size (or x-ferry-size) a miss is read
 *                                 through; an external chunk's miss with the path of a file listing it
 *                                 may be read from that file's origin
 *   HEAD   /chunks/:id           200 + length when held, 404 otherwise; no read-through, no recency change
 *   PUT    /chunks/:id           store verified bytes (x-ferry-size or Content-Length required); 422 if they do not match the id
 *   DELETE /chunks/:id           204, held or not
 *   POST   /chunks/:id/fill?size=N[&path=P]   read through without sending the bytes back: {state: held|fetched}
 *   POST   /chunks/:id/bad       a reader found the copy it got from here wrong: the node hashes its own copy
 *                                 and evicts it when wrong → {state: evicted|verified|missing}
 *   POST   /chunks/has           {ids: [...]} → {has: [...]}: which of them are held (residency checks)
 *   GET    /inventory?cursor=&limit=  held ids in ascending order, a page at a time
 *   GET    /metrics, GET /healthz (the only route open without a token)
 * PUT, DELETE and fill need the write token (403 with the read token); the rest take either.
 * Ids are validated before anything touches the disk.
 */
export function build(options: CacheNodeAppOptions): FastifyInstance {
  const { cache, upstream, maxChunkBytes } = options;
  const readToken = options.readToken ?? options.token;
  const writeToken = options.writeToken ?? options.token;
  if (!readToken) throw new InvalidArgumentError('cache node: a read token is required');
  const metrics = options.metrics ?? createCacheMetrics();
  const log = options.logger ?? silentLogger;
  const inflight = new Map<string, Promise<{ bytes: Buffer; stored: boolean } | undefined>>();
  /** Disk reads of held chunks in progress: concurrent hits of one chunk share one read and one buffer. */
  const reads = new Map<ChunkId, Promise<Buffer | 'corrupt' | undefined>>();
  const limit = concurrencyLimit(options.maxInflight ?? 32);
  const admission = new ChunkAdmission({
    maxStreams: options.limits?.maxStreams ?? 1024,
    maxBytes: options.limits?.maxBytesInFlight ?? 256 * 2 ** 20,
  });
  metrics.inflight = admission;

  /** Admit a chunk request (true), or answer 503 with Retry-After (false) when the node is at its limits. */
  const admit = (reply: FastifyReply, id: ChunkId, size: number | undefined): boolean => {
    const release = admission.admit(id, cache.sizeOf(id) ?? size);
    if (!release) {
      metrics.busy.inc();
      void reply.code(503).header('retry-after', '1').send({ error: 'BUSY', message: 'the node is at its limit of requests in flight' });
      return false;
    }
    // 'close' comes when the response ended or its client went away, whichever is first.
    reply.raw.once('close', release);
    return true;
  };

  const readHeld = (id: ChunkId): Promise<Buffer | 'corrupt' | undefined> => {
    let running = reads.get(id);
    if (!running) {
      running = cache.read(id).finally(() => reads.delete(id));
      reads.set(id, running);
    }
    return running;
  };
  const app = serviceApp({
    logger: false,
    exposeHeadRoutes: false,
    bodyLimit: 4 * 2 ** 20,
    log,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
  });

  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxChunkBytes }, (_req, body, done) => done(null, body));

  app.addHook(
    'onRequest',
    bearerRoles({
      roles: [
        ['read', readToken],
        ['write', writeToken],
      ],
      required: requiredRole,
      deniedCode: 'ACCESS_DENIED',
    }),
  );

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = isFerryError(err) ? (STATUS[err.code] ?? 500) : (err.statusCode ?? 500);
    if (status >= 500) log.error({ err, method: req.method, route: req.routeOptions.url }, 'request failed');
    reply.code(status).send({ error: isFerryError(err) ? err.code : 'ERROR', message: messageOf(err) });
  });

  const chunkParam = (req: FastifyRequest) => parseChunkId((req.params as { id?: unknown }).id);

  /** The size a client says a chunk has (query `size` or header x-ferry-size), if any. */
  const wantedSize = (req: FastifyRequest): number | undefined => {
    const raw = (req.query as { size?: string }).size ?? req.headers['x-ferry-size'];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1 || n > maxChunkBytes) {
      throw new InvalidArgumentError(`invalid chunk size ${JSON.stringify(String(raw).slice(0, 20))}: expected 1..${maxChunkBytes}`);
    }
    return n;
  };

  /**
   * Where a missed external chunk sits, when the request names its file and the node knows the
   * region's entries; the lookup refuses a file that does not list the chunk.
   */
  const contextOf = async (req: FastifyRequest, want: ChunkWant): Promise<ChunkContext | undefined> => {
    const path = (req.query as { path?: unknown }).path;
    if (path === undefined || !options.entries || !upstream) return undefined;
    if (typeof path !== 'string') throw new InvalidArgumentError('invalid path: expected one path=');
    return chunkContext(options.entries, want, path);
  };

  /**
   * One upstream fetch per chunk however many requests miss it at once (single-flight). The
   * bytes are verified, stored, and handed to every waiter; a failure to store them still serves.
   */
  const fill = (want: ChunkWant, context?: ChunkContext) => {
    // A request that may go to the origin does not wait on one that may not.
    const key = `${want.id}:${want.size}${context ? ':origin' : ''}`;
    let running = inflight.get(key);
    if (!running) {
      running = (async () => {
        if (!upstream) return undefined;
        metrics.upstreamFetches.inc();
        let bytes: Buffer | undefined;
        try {
          bytes = await upstream(want, context);
        } catch (err) {
          metrics.upstreamFailures.inc();
          throw err;
        }
        if (!bytes) return undefined;
        await verifyChunk(want, bytes, 'upstream');
        metrics.upstreamBytes.inc(bytes.length);
        try {
          if ((await cache.put(want.id, bytes)) === 'stored') metrics.stored.inc({ via: 'fill' });
          return { bytes, stored: true };
        } catch (err) {
          log.warn({ err, chunk: want.id, reason: messageOf(err) }, 'could not keep a fetched chunk; serving it anyway');
          return { bytes, stored: false };
        }
      })().finally(() => inflight.delete(key));
      inflight.set(key, running);
    }
    return running;
  };

  /**
   * A held chunk as its verified file (streamed, not hashed), or its bytes (verified now, or
   * read through on a miss), or undefined.
   */
  const obtain = async (req: FastifyRequest, id: ChunkId, size: number | undefined): Promise<Obtained | undefined> => {
    if (cache.has(id)) {
      const opened = await cache.openVerified(id);
      if (opened && opened !== 'unverified') {
        metrics.hits.inc();
        return { file: opened, size: opened.size, via: 'hit' };
      }
      // Not in its verified state (a restart lost the record, or the file changed): hash it first,
      // once for every request that needs it now.
      const held = opened === 'unverified' ? await readHeld(id) : undefined;
      if (Buffer.isBuffer(held)) {
        metrics.hits.inc();
        return { bytes: held, size: held.length, via: 'hit' };
      }
      if (held === 'corrupt') metrics.corrupt.inc({ where: 'disk' });
    }
    metrics.misses.inc();
    if (size === undefined) return undefined;
    const want = { id, size };
    const filled = await fill(want, await contextOf(req, want));
    return filled ? { bytes: filled.bytes, size: filled.bytes.length, via: 'fill' } : undefined;
  };

  const notHeld = (reply: FastifyReply, id: ChunkId, readThrough: boolean) =>
    reply.code(404).send({
      error: 'NOT_FOUND',
      message: readThrough ? `chunk ${id}: not held, and no store of the region has it` : `chunk ${id}: not held`,
    });

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/metrics', async (_req, reply) => {
    metrics.used.set(cache.used);
    metrics.capacity.set(cache.capacity);
    metrics.chunks.set(cache.count);
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.get('/inventory', async (req) => {
    const q = req.query as { cursor?: string; limit?: string };
    const limit = q.limit === undefined ? 1000 : Number(q.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new InvalidArgumentError('invalid limit: expected 1..10000');
    const cursor = q.cursor ? parseChunkId(q.cursor) : undefined;
    return { ...cache.page(cursor, limit), used: cache.used, capacity: cache.capacity };
  });

  app.head('/chunks/:id', async (req, reply) => {
    const size = cache.sizeOf(chunkParam(req));
    if (size === undefined) return reply.code(404).send();
    return reply.header('content-length', size).header('content-type', 'application/octet-stream').send();
  });

  app.get('/chunks/:id', async (req, reply) => {
    const id = chunkParam(req);
    const size = wantedSize(req);
    if (!admit(reply, id, size)) return reply;
    const got = await limit(() => obtain(req, id, upstream ? size : undefined));
    if (!got) return notHeld(reply, id, size !== undefined && upstream !== undefined);
    const range = parseRange(req.headers.range, got.size);
    reply.header('accept-ranges', 'bytes').header('x-ferry-cache', got.via);
    if (range === 'unsatisfiable') {
      await got.file?.handle.close();
      return reply
        .code(416)
        .header('content-range', `bytes */${got.size}`)
        .send({ error: 'RANGE_NOT_SATISFIABLE', message: `chunk ${id} has ${got.size} bytes` });
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

  app.post('/chunks/:id/bad', async (req) => {
    const id = chunkParam(req);
    // A reader's word is not enough to evict: the node hashes its own copy and drops it only if wrong.
    const state = await limit(() => cache.check(id));
    if (state === 'corrupt') metrics.corrupt.inc({ where: 'reported' });
    log.warn({ chunk: id, state }, 'a reader reported a bad copy of a chunk from here');
    return { id, state: state === 'corrupt' ? 'evicted' : state };
  });

  /**
   * An upload holds its body in memory until it is verified and written, so it is admitted like
   * a read, before the body is read: past the node's limits it is answered 503 at once and
   * nothing of it is held.
   */
  const admitUpload = async (req: FastifyRequest, reply: FastifyReply) => {
    const declared = Number(req.headers['x-ferry-size'] ?? req.headers['content-length']);
    if (!Number.isSafeInteger(declared) || declared < 1 || declared > maxChunkBytes) return; // the handler says why
    if (!admit(reply, chunkParam(req), declared)) return reply;
  };

  app.put('/chunks/:id', { bodyLimit: maxChunkBytes, onRequest: admitUpload }, async (req, reply) => {
    const id = chunkParam(req);
    const declared = req.headers['x-ferry-size'] ?? req.headers['content-length'];
    if (declared === undefined) return reply.code(411).send({ error: 'LENGTH_REQUIRED', message: 'send x-ferry-size or Content-Length' });
    const size = Number(declared);
    if (!Number.isSafeInteger(size) || size < 1 || size > maxChunkBytes) {
      throw new InvalidArgumentError(`invalid chunk size ${JSON.stringify(String(declared).slice(0, 20))}: expected 1..${maxChunkBytes}`);
    }
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const known = isNativeChunkId(id) ? undefined : await options.hashes?.get(id);
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

  app.delete('/chunks/:id', async (req, reply) => {
    await cache.delete(chunkParam(req), 'delete');
    return reply.code(204).send();
  });

  app.post('/chunks/:id/fill', async (req, reply) => {
    const id = chunkParam(req);
    const size = wantedSize(req);
    if (size === undefined) throw new InvalidArgumentError('fill: the chunk size is required (?size=N)');
    if (cache.has(id)) {
      cache.touch(id);
      return { id, state: 'held' };
    }
    const want = { id, size };
    if (!admit(reply, id, size)) return reply;
    const filled = upstream ? await limit(async () => fill(want, await contextOf(req, want))) : undefined;
    if (!filled) return notHeld(reply, id, upstream !== undefined);
    if (!filled.stored) return reply.code(507).send({ error: 'NOT_STORED', message: `chunk ${id}: fetched but could not be kept on disk` });
    return { id, state: 'fetched' };
  });

  app.post('/chunks/has', async (req) => {
    const ids = (req.body as { ids?: unknown } | undefined)?.ids;
    if (!Array.isArray(ids) || ids.length > 10_000) throw new InvalidArgumentError('has: expected {"ids": [...]} with at most 10000 ids');
    return { has: ids.map((id) => parseChunkId(id)).filter((id) => cache.has(id)) };
  });

  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({ error: 'NOT_FOUND', message: 'no such route' });
  });

  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
