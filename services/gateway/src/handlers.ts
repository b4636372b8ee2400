import { pipeline, Transform } from 'node:stream';
import type { Logger } from '@ferry/core';
import { NotFoundError } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { bearerOf, hasBearer, type InFlightBudget } from '@ferry/runtime';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { S3Error, toS3Error } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import { OBJECT_PARAMS, planObject, type RequestHeaders } from './objects.js';
import { handleList, LIST_PARAMS } from './operations.js';
import type { AuthResult } from './sigv4.js';
import { streamBytes } from './stream-bytes.js';
import { keyToPath } from './target.js';
import { listBucketsXml, locationXml } from './xml.js';

export const XML = 'application/xml';
// `x-id`: the SDK's operation hint; the rest carry a signature version 2 presigned URL's auth (sigv2.ts).
const IGNORED_PARAMS = new Set(['x-id', 'AWSAccessKeyId', 'Expires', 'Signature']);

/** What the operations of one gateway share: its volume, reader, limits, metrics and how it checks a signature. */
export interface GatewayContext {
  volume: string;
  region: string;
  created: number;
  reader: RegionReader;
  anonymous: boolean;
  metricsToken: string | undefined;
  budget: InFlightBudget;
  metrics: GatewayMetrics;
  log: Logger;
  health: (() => Promise<{ ok: boolean; detail?: Record<string, unknown> }>) | undefined;
  authenticate(req: FastifyRequest, rawPath: string, rawQuery: string): AuthResult;
}

/** Refuse a query parameter the operation does not take (S3's NotImplemented). */
export function onlyParams(query: ReadonlyMap<string, string>, allowed: ReadonlySet<string>, what: string): void {
  for (const name of query.keys()) {
    // Presigners hoist x-amz-* headers (x-amz-checksum-mode, …) into the query: headers, not sub-resources.
    if (!allowed.has(name) && !IGNORED_PARAMS.has(name) && !name.toLowerCase().startsWith('x-amz-')) {
      throw new S3Error('NotImplemented', `${what} with "${name}" is not offered by this read-only gateway`);
    }
  }
}

/** `/-/healthz` (open) and `/-/metrics` (the metrics token or a signed request). */
export async function internalRequest(
  c: GatewayContext,
  req: FastifyRequest,
  reply: FastifyReply,
  name: string,
  rawPath: string,
  rawQuery: string,
) {
  if (name === 'healthz') {
    req.s3.operation = 'Health';
    const health = (await c.health?.()) ?? { ok: true };
    return reply.code(health.ok ? 200 : 503).send(health);
  }
  if (name !== 'metrics') throw new S3Error('NoSuchBucket', 'the specified bucket does not exist');
  req.s3.operation = 'Metrics';
  const allowed =
    bearerOf(req) !== undefined ? hasBearer(req, c.metricsToken) : c.authenticate(req, rawPath, rawQuery).kind === 'signed' || c.anonymous;
  if (!allowed) throw new S3Error('AccessDenied', 'metrics need the metrics bearer token or a signed request');
  return reply.type(c.metrics.registry.contentType).send(await c.metrics.registry.metrics());
}

/** GetObject and HeadObject: preconditions, one range, bytes streamed from the reader within the gateway's budget. */
export async function objectRequest(c: GatewayContext, req: FastifyRequest, reply: FastifyReply, key: string, query: Map<string, string>) {
  const { reader, budget, metrics, log } = c;
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

/** HeadBucket, GetBucketLocation, ListObjects (v1 and v2). */
export async function bucketRequest(c: GatewayContext, req: FastifyRequest, reply: FastifyReply, query: Map<string, string>) {
  if (req.method === 'HEAD') {
    req.s3.operation = 'HeadBucket';
    return reply.send();
  }
  if (query.has('location')) {
    req.s3.operation = 'GetBucketLocation';
    onlyParams(query, new Set(['location']), 'GetBucketLocation');
    return reply.type(XML).send(locationXml(c.region));
  }
  req.s3.operation = query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
  onlyParams(query, LIST_PARAMS, 'a bucket request');
  return reply.type(XML).send(await handleList(c.reader.meta, c.volume, query));
}

/** ListBuckets: the volume is the one bucket. */
export function serviceRequest(c: GatewayContext, req: FastifyRequest, reply: FastifyReply) {
  req.s3.operation = 'ListBuckets';
  return reply.type(XML).send(req.method === 'HEAD' ? undefined : listBucketsXml([{ name: c.volume, created: c.created }]));
}
