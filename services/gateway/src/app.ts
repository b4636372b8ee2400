import { randomBytes } from 'node:crypto';
import { type Logger, silentLogger } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { InFlightBudget, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { S3Error, toS3Error } from './errors.js';
import { bucketRequest, type GatewayContext, internalRequest, objectRequest, serviceRequest, XML } from './handlers.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';
import { isV2Presigned, verifyV2Presigned } from './sigv2.js';
import { type AuthResult, verifyRequest } from './sigv4.js';
import { parseUrl, type Target } from './target.js';
import { errorXml } from './xml.js';

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
  /** Timeouts and header size (`gateway.limits`), and the cap on GetObject streams and the bytes they hold. */
  limits: ServerLimits & { maxStreams: number; maxBytesInFlight: number };
  /**
   * The global cap on GetObject streams and the bytes they hold, when the caller shares it (its
   * metrics read it); default one made from `limits`. Beyond it a GetObject is answered 503 SlowDown.
   */
  budget?: InFlightBudget;
}

const WRITE_METHODS = new Set(['PUT', 'POST', 'DELETE', 'PATCH']);

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
  const budget = options.budget ?? new InFlightBudget({ maxStreams: options.limits.maxStreams, maxBytes: options.limits.maxBytesInFlight });
  const metrics = options.metrics ?? createMetrics({ volume, region, tiers: reader.chunks, inflight: budget });
  const log = options.logger ?? silentLogger;
  const created = Date.now();
  // Fastify's own logging stays off: it would print URLs, and a presigned URL carries a signature.
  const app = serviceApp({
    ...(options.tls ? { tls: options.tls } : {}),
    limits: options.limits,
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
    const signed = { method: req.method, rawPath, rawQuery, rawHeaders: req.raw.rawHeaders };
    const now = options.now ? { now: options.now() } : {};
    const query = new URLSearchParams(rawQuery);
    // A V2 presigned URL (aws CLI v1's `presign`): neither an Authorization header nor X-Amz-* auth.
    if (isV2Presigned(query) && req.headers.authorization === undefined && !query.has('X-Amz-Signature')) {
      return {
        kind: 'signed',
        accessKeyId: verifyV2Presigned(signed, query, { secretOf: (id) => secrets.get(id), ...now }),
        presigned: true,
      };
    }
    return verifyRequest(signed, { secretOf: (id) => secrets.get(id), region, ...now });
  }

  const context: GatewayContext = {
    volume,
    region,
    created,
    reader,
    anonymous,
    metricsToken: options.metricsToken,
    budget,
    metrics,
    log,
    health: options.health,
    authenticate,
  };

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
        if (target.kind === 'internal') return await internalRequest(context, req, reply, target.name, rawPath, rawQuery);
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
    if (target.kind === 'service') return serviceRequest(context, req, reply);
    if (target.kind === 'internal') throw new S3Error('NoSuchBucket', 'the specified bucket does not exist');
    if (target.bucket !== volume) {
      req.s3.operation = target.kind === 'bucket' ? 'Bucket' : 'Object';
      throw new S3Error('NoSuchBucket', 'the specified bucket does not exist');
    }
    if (target.kind === 'bucket') return bucketRequest(context, req, reply, query);
    return objectRequest(context, req, reply, target.key, query);
  }

  // Errors raised outside the handler (a stream failing before its first byte) still answer in S3 XML.
  app.setErrorHandler((err, req, reply) => sendError(req, reply, err, pathOf(req)));
  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
