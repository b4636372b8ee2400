import { randomBytes } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import { type Entry, type Logger, NotFoundError, silentLogger } from '@ferry/core';
import { piecesOf, type RegionReader } from '@ferry/reader';
import { bearerOf, hasBearer, InFlightBudget, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { S3Error, toS3Error } from './errors.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';
import { type ByteRange, OBJECT_PARAMS, planObject, type RequestHeaders } from './objects.js';
import { handleList, LIST_PARAMS } from './operations.js';
import { type AuthResult, verifyRequest } from './sigv4.js';
import { keyToPath, parseUrl, type Target } from './target.js';
import { errorXml, listBucketsXml, locationXml } from './xml.js';

export interface GatewayOptions {
  /** The volume, served as the one bucket of the same name. */
  volume: string;
  /** The region clients sign for (config.gateway.region). */
  region: string;
  reader: RegionReader;
  accessKeys: ReadonlyArray<{ accessKeyId: string; secretAccessKey: string }>;
  /** Serve unsigned requests too. Off by default; signed requests are still verified. */
  anonymous?: boolean;
  /** Bearer token for `/-/metrics` (Prometheus); a valid SigV4 signature also works. */
  metricsToken?: string;
  health?: () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;
  metrics?: GatewayMetrics;
  logger?: Logger;
  /** Clock for signature checks (tests). */
  now?: () => number;
  /** Serve HTTPS only (`gateway.tls`). */
  tls?: ServerTlsFiles;
  /** Timeouts and header size (`gateway.limits`). */
  limits?: Partial<ServerLimits>;
  /**
   * The global cap on GetObject streams and the bytes they hold (`gateway.limits.maxStreams`,
   * `maxBytesInFlight`); beyond it a GetObject is answered 503 SlowDown. Default: 256 streams, 1 GiB.
   */
  budget?: InFlightBudget;
}

/**
 * The most bytes a GetObject stream of `range` holds: the chunks it fetches ahead plus the one
 * being sent and the one queued for the socket, each at most the entry's largest chunk.
 */
export function streamBytes(entry: Entry, range: ByteRange, prefetch: number): number {
  const pieces = piecesOf(entry, range.start, range.end);
  const largest = pieces.reduce((max, p) => Math.max(max, p.ref.size), 0);
  return Math.min(pieces.length, prefetch + 3) * largest;
}

// The JS SDK v3 names the operation in the URL; it means nothing to S3.
const IGNORED_PARAMS = new Set(['x-id']);
const WRITE_METHODS = new Set(['PUT', 'POST', 'DELETE', 'PATCH']);
const XML = 'application/xml';

interface State {
  operation: string;
  started: number;
  bytes: number;
  accessKeyId?: string;
  error?: S3Error;
}

declare module 'fastify' {
  interface FastifyRequest {
    s3: State;
  }
}

function newState(): State {
  return { operation: 'Unknown', started: performance.now(), bytes: 0 };
}

/** The path of a request without its query: a presigned URL's query holds its signature. */
function pathOf(req: FastifyRequest): string {
  return (req.raw.url ?? '/').split('?')[0] ?? '/';
}

function onlyParams(query: ReadonlyMap<string, string>, allowed: ReadonlySet<string>, what: string): void {
  for (const name of query.keys()) {
    // Presigners hoist x-amz-* headers (x-amz-checksum-mode, …) into the query: headers, not sub-resources.
    if (!allowed.has(name) && !IGNORED_PARAMS.has(name) && !name.toLowerCase().startsWith('x-amz-')) {
      throw new S3Error('NotImplemented', `${what} with "${name}" is not offered by this read-only gateway`);
    }
  }
}

/**
 * The S3-compatible, read-only endpoint of one volume in one region. `build` returns the app
 * without listening (tests use `inject()` or a real socket); `listen` binds it.
 */
export function build(options: GatewayOptions): FastifyInstance {
  const anonymous = options.anonymous ?? false;
  if (!anonymous && options.accessKeys.length === 0) {
    throw new Error('gateway: configure gateway.accessKeys, or set gateway.anonymous: true to serve unsigned requests');
  }
  const secrets = new Map(options.accessKeys.map((k) => [k.accessKeyId, k.secretAccessKey]));
  const { reader, volume, region } = options;
  const budget = options.budget ?? new InFlightBudget({ maxStreams: 256, maxBytes: 2 ** 30 });
  const metrics = options.metrics ?? createMetrics({ volume, region, tiers: reader.chunks, inflight: budget });
  const log = options.logger ?? silentLogger;
  const created = Date.now();
  // Fastify's own logging stays off: it would print URLs, and a presigned URL carries a signature.
  const app = serviceApp({
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    log,
    logger: false,
    exposeHeadRoutes: false,
    genReqId: () => randomBytes(8).toString('hex').toUpperCase(),
    // The router refuses some URLs (bad percent-encoding) before any hook runs: answer in S3 XML too.
    frameworkErrors: (err, req, reply) => {
      const e =
        err.code === 'FST_ERR_BAD_URL'
          ? new S3Error('InvalidURI', 'could not parse the request URI')
          : new S3Error('InvalidRequest', err.message);
      reply.header('x-amz-request-id', req.id);
      return sendError(req, reply, e, pathOf(req));
    },
  });
  // Bodies are never read: every request that has one is refused before parsing.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  function authenticate(req: FastifyRequest, rawPath: string, rawQuery: string): AuthResult {
    return verifyRequest(
      { method: req.method, rawPath, rawQuery, rawHeaders: req.raw.rawHeaders },
      { secretOf: (id) => secrets.get(id), region, ...(options.now ? { now: options.now() } : {}) },
    );
  }

  function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown, resource: string): FastifyReply {
    const e = toS3Error(err);
    req.s3 ??= newState();
    req.s3.error = e;
    // Headers of the object a failed GET was about to send must not reach the error response.
    for (const name of ['etag', 'last-modified', 'content-range', 'content-length', 'accept-ranges', 'content-disposition']) {
      reply.removeHeader(name);
      if (!reply.raw.headersSent) reply.raw.removeHeader(name);
    }
    reply.code(e.status).headers(e.headers).type(XML);
    if (req.method === 'HEAD') return reply.send();
    return reply.send(errorXml({ code: e.code, message: e.message, resource, requestId: req.id }));
  }

  app.addHook('onRequest', async (req, reply) => {
    req.s3 = newState();
    reply.header('x-amz-request-id', req.id).header('x-amz-id-2', req.id).header('x-amz-bucket-region', region).header('server', 'Ferry');
    if (WRITE_METHODS.has(req.method)) {
      req.s3.operation = 'Write';
      // An unread upload must not stay on a kept-alive connection.
      if (req.headers['content-length'] !== '0' && (req.headers['content-length'] || req.headers['transfer-encoding'])) {
        reply.header('connection', 'close');
      }
      return sendError(req, reply, new S3Error('AccessDenied', 'this gateway is read-only'), pathOf(req));
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    const { operation, started, bytes, accessKeyId, error } = req.s3 ?? newState();
    metrics.requests.inc({ operation, status: String(reply.statusCode) });
    const seconds = (performance.now() - started) / 1000;
    metrics.seconds.observe({ operation }, seconds);
    const line = {
      reqId: req.id,
      operation,
      method: req.method,
      path: pathOf(req),
      status: reply.statusCode,
      bytes,
      ms: Math.round(seconds * 1000),
      ...(accessKeyId ? { accessKeyId } : {}),
    };
    if (error && error.status >= 500) log.error({ ...line, err: error.cause ?? error, code: error.code }, 'request failed');
    else log.debug({ ...line, ...(error ? { code: error.code, reason: error.message } : {}) }, 'request');
  });

  async function internal(req: FastifyRequest, reply: FastifyReply, name: string, rawPath: string, rawQuery: string) {
    if (name === 'healthz') {
      req.s3.operation = 'Health';
      const health = (await options.health?.()) ?? { ok: true };
      return reply.code(health.ok ? 200 : 503).send(health);
    }
    if (name !== 'metrics') throw new S3Error('NoSuchBucket', 'the specified bucket does not exist');
    req.s3.operation = 'Metrics';
    const allowed =
      bearerOf(req) !== undefined
        ? hasBearer(req, options.metricsToken)
        : authenticate(req, rawPath, rawQuery).kind === 'signed' || anonymous;
    if (!allowed) throw new S3Error('AccessDenied', 'metrics need the metrics bearer token or a signed request');
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  }

  async function object(req: FastifyRequest, reply: FastifyReply, key: string, query: Map<string, string>) {
    req.s3.operation = req.method === 'HEAD' ? 'HeadObject' : 'GetObject';
    onlyParams(query, OBJECT_PARAMS, req.s3.operation);
    // As S3: an unsigned request may not choose the headers a signed link would set.
    if (req.s3.accessKeyId === undefined && [...query.keys()].some((name) => OBJECT_PARAMS.has(name))) {
      throw new S3Error('InvalidRequest', 'Request specific response headers cannot be used for anonymous GET requests.');
    }
    const entry = await reader.stat(keyToPath(key)).catch((err) => {
      throw err instanceof NotFoundError ? new S3Error('NoSuchKey', 'the specified key does not exist', { cause: err }) : err;
    });
    const plan = planObject(entry, req.headers as RequestHeaders, query);
    if (plan.status === 412) throw new S3Error('PreconditionFailed', 'at least one of the preconditions you specified did not hold');
    reply.code(plan.status).headers(plan.headers);
    if (req.method === 'HEAD' || !plan.range) return reply.send();
    const lease = budget.tryAcquire(streamBytes(entry, plan.range, reader.prefetch));
    if (!lease) {
      throw new S3Error('SlowDown', 'Please reduce your request rate.', { headers: { 'retry-after': '1' } });
    }
    // Released when the response ends or its client goes away, whichever comes first.
    reply.raw.once('close', () => lease.release());
    const state = req.s3;
    const source = reader.stream(entry, plan.range);
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        state.bytes += chunk.length;
        metrics.bytesServed.inc(chunk.length);
        done(null, chunk);
      },
    });
    // Fastify destroys the body when the client goes away; pipeline passes that on to the
    // reader's stream, which stops fetching chunks.
    pipeline(source, counted, (err) => {
      if (!err || (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
      state.error = toS3Error(err);
      // Before the first byte the error handler answers with an S3 error; after it, the client
      // only sees the connection cut short of Content-Length, so say here what happened.
      if (reply.raw.headersSent) log.error({ reqId: req.id, path: entry.path, err }, 'read failed after the response started');
    });
    return reply.send(counted);
  }

  async function bucket(req: FastifyRequest, reply: FastifyReply, query: Map<string, string>) {
    if (req.method === 'HEAD') {
      req.s3.operation = 'HeadBucket';
      return reply.send();
    }
    if (query.has('location')) {
      req.s3.operation = 'GetBucketLocation';
      onlyParams(query, new Set(['location']), 'GetBucketLocation');
      return reply.type(XML).send(locationXml(region));
    }
    req.s3.operation = query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
    onlyParams(query, LIST_PARAMS, 'a bucket request');
    return reply.type(XML).send(await handleList(reader.meta, volume, query));
  }

  app.route({
    method: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'POST', 'DELETE', 'PATCH'],
    url: '*',
    handler: async (req, reply) => {
      let resource = '/';
      try {
        const { rawPath, rawQuery, query, target } = parseUrl(req.raw.url ?? '/');
        resource = rawPath;
        if (req.method !== 'GET' && req.method !== 'HEAD')
          throw new S3Error('NotImplemented', `${req.method} is not offered by this read-only gateway`);
        if (target.kind === 'internal') return await internal(req, reply, target.name, rawPath, rawQuery);
        const auth = authenticate(req, rawPath, rawQuery);
        if (auth.kind === 'signed') req.s3.accessKeyId = auth.accessKeyId;
        else if (!anonymous) throw new S3Error('AccessDenied', 'access denied: sign requests with an access key of this gateway');
        return await dispatch(req, reply, target, query);
      } catch (err) {
        return sendError(req, reply, err, resource);
      }
    },
  });

  async function dispatch(req: FastifyRequest, reply: FastifyReply, target: Target, query: Map<string, string>) {
    if (target.kind === 'service') {
      req.s3.operation = 'ListBuckets';
      return reply.type(XML).send(req.method === 'HEAD' ? undefined : listBucketsXml([{ name: volume, created }]));
    }
    if (target.kind === 'internal') throw new S3Error('NoSuchBucket', 'the specified bucket does not exist');
    if (target.bucket !== volume) {
      req.s3.operation = target.kind === 'bucket' ? 'Bucket' : 'Object';
      throw new S3Error('NoSuchBucket', 'the specified bucket does not exist');
    }
    if (target.kind === 'bucket') return bucket(req, reply, query);
    return object(req, reply, target.key, query);
  }

  // Errors raised outside the handler (a stream failing before its first byte) still answer in S3 XML.
  app.setErrorHandler((err, req, reply) => sendError(req, reply, err, pathOf(req)));
  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
