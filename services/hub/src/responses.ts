import { pipeline, Transform } from 'node:stream';
import { type Entry, httpStatusOf, isFerryError, type Logger, messageOf, parseByteRange } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import type { InFlightBudget } from '@ferry/runtime';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HubError, headerSafe } from './errors.js';
import type { HubMetrics } from './metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    hub: { route: string; started: number; bytes: number; error?: HubError | Error };
  }
}

/** What sending a file needs: the reader, the global budget of streams, metrics and the log. */
export interface Served {
  reader: RegionReader;
  budget: InFlightBudget;
  metrics: HubMetrics;
  log: Logger;
}

/** The whole file or one range of it (206/416), streamed from the reader within the hub's budget (503 beyond it). */
export function sendFile({ reader, budget, metrics, log }: Served, req: FastifyRequest, reply: FastifyReply, entry: Entry) {
  const range = parseByteRange(req.headers.range, entry.size);
  if (range === 'unsatisfiable') {
    throw new HubError(416, undefined, `range ${req.headers.range} is outside the file (${entry.size} bytes)`, {
      headers: { 'content-range': `bytes */${entry.size}` },
    });
  }
  const span = range ?? (entry.size > 0 ? { start: 0, end: entry.size - 1 } : undefined);
  reply.code(range ? 206 : 200).header('content-length', String(span ? span.end - span.start + 1 : 0));
  if (range) reply.header('content-range', `bytes ${range.start}-${range.end}/${entry.size}`);
  if (req.method === 'HEAD' || !span) return reply.send();
  const lease = budget.tryAcquire(streamBytes(entry, span.end - span.start + 1, reader.window));
  if (!lease) throw new HubError(503, undefined, 'too many downloads at once; retry shortly', { headers: { 'retry-after': '1' } });
  // Released when the response ends or its client goes away, whichever comes first.
  reply.raw.once('close', () => lease.release());
  const state = req.hub;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      state.bytes += chunk.length;
      metrics.bytesServed.inc(chunk.length);
      done(null, chunk);
    },
  });
  // Fastify destroys the body when the client goes away; pipeline passes that on to the reader.
  pipeline(reader.stream(entry, span), counted, (err) => {
    if (!err || (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    state.error = err;
    // After the first byte the client only sees the body cut short of Content-Length.
    if (reply.raw.headersSent) log.error({ reqId: req.id, path: entry.path, err }, 'read failed after the response started');
  });
  return reply.send(counted);
}

/** An error in the Hub's shape; headers of the file a failed request was about to send are removed. */
export function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown) {
  const e = err instanceof HubError ? err : toHubError(err);
  req.hub ??= { route: 'other', started: performance.now(), bytes: 0 };
  req.hub.error = e.status >= 500 ? ((e.cause as Error | undefined) ?? e) : e;
  for (const name of ['etag', 'x-linked-etag', 'x-linked-size', 'content-length', 'content-range', 'accept-ranges'])
    reply.removeHeader(name);
  reply.code(e.status).headers(e.headers).header('x-error-message', headerSafe(e.message));
  if (e.errorCode) reply.header('x-error-code', e.errorCode);
  return req.method === 'HEAD' ? reply.send() : reply.type('application/json; charset=utf-8').send({ error: e.message });
}

/**
 * Ferry's own errors keep their status and message (a chunk that failed verification says so);
 * fastify's client errors keep theirs; anything else is an internal error whose detail stays in the log.
 */
function toHubError(err: unknown): HubError {
  const status = httpStatusOf(err);
  if (isFerryError(err) || status < 500) return new HubError(status, undefined, messageOf(err), { cause: err });
  return new HubError(status, undefined, 'internal error reading the repo; see the hub log', { cause: err });
}

/** The most bytes one file stream holds: the chunks fetched ahead plus two, each at most the largest chunk. */
function streamBytes(entry: Entry, length: number, window: number): number {
  const largest = entry.chunks.reduce((max, c) => Math.max(max, c.size), 0);
  return Math.min(Math.ceil(length / Math.max(1, largest)) + 1, window + 3) * largest;
}

/** Each request counted by route and status, timed, and logged as one JSON line (no query string, no token). */
export function logRequests(app: FastifyInstance, metrics: HubMetrics, log: Logger): void {
  app.addHook('onRequest', async (req) => {
    req.hub = { route: 'other', started: performance.now(), bytes: 0 };
  });
  app.addHook('onResponse', async (req, reply) => {
    const { route, started, bytes, error } = req.hub;
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    const seconds = (performance.now() - started) / 1000;
    metrics.seconds.observe({ route }, seconds);
    const line = {
      reqId: req.id,
      route,
      method: req.method,
      path: req.url.split('?')[0],
      status: reply.statusCode,
      bytes,
      ms: Math.round(seconds * 1000),
    };
    if (error && reply.statusCode >= 500) log.error({ ...line, err: error }, 'request failed');
    else log.debug({ ...line, ...(error ? { reason: error.message } : {}) }, 'request');
  });
}
