import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, createCacheMetrics, DiskCache, listen } from '@ferry/cache-node';
import { type ChunkId, nativeChunkId, sha256Hex } from '@ferry/core';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheLimits } from '../support/defaults.js';
import { errorCode, type GatewayFixture, rawRequest, startGateway } from '../support/gateway.js';

// Services that hold under hostile clients: slowloris sockets are cut by the header timeout while
// normal requests go on, oversized request heads are refused, and beyond their global caps the
// gateway answers SlowDown and a node 503 with Retry-After.

const SLOW_SOCKETS = 200;
const TOKEN = 'limits-node-token';

interface Slowloris {
  closed: Promise<number[]>;
  sockets: Socket[];
  stop(): void;
}

/** `count` connections that send a request head one byte a second and never finish it. */
function slowloris(port: number, count: number): Slowloris {
  const head = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ';
  const started = Date.now();
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const closes: Array<Promise<number>> = [];
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    // Whatever the server answers (408) is read and dropped.
    socket.on('data', () => {});
    sockets.push(socket);
    closes.push(new Promise((resolve) => socket.once('close', () => resolve(Date.now() - started))));
    let sent = 0;
    const timer = setInterval(() => {
      if (socket.destroyed) return clearInterval(timer);
      socket.write(head[sent % head.length] as string);
      sent += 1;
    }, 1_000);
    timers.push(timer);
  }
  return {
    closed: Promise.all(closes),
    sockets,
    stop() {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
    },
  };
}

/** A GET with a fresh connection; resolves with its status and the time it took. */
function timedGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('slowloris and oversized heads', () => {
  let fx: GatewayFixture;
  let node: FastifyInstance;
  let nodePort: number;
  let dir: string;
  const chunk = randomBytes(64 * 1024);
  const id = nativeChunkId(sha256Hex(chunk));

  beforeAll(async () => {
    fx = await startGateway({ anonymous: true, limits: { headersTimeout: '2s', requestTimeout: '5s', idleTimeout: '10s' } });
    await fx.put('/models/small', { 'config.json': Buffer.from('{"ok":true}\n') });
    dir = await mkdtemp(join(tmpdir(), 'ferry-limits-'));
    const cache = await DiskCache.open({ dir, capacity: 1 << 24 });
    await cache.put(id, chunk);
    node = build({
      cache,
      tokens: { read: TOKEN, write: TOKEN },
      maxChunkBytes: 1 << 20,
      limits: cacheLimits({ headersTimeout: 2_000, requestTimeout: 5_000, idleTimeout: 10_000 }),
    });
    nodePort = (await listen(node, '127.0.0.1:0')).port;
  });
  afterAll(async () => {
    await node?.close();
    await fx?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(['gateway', 'cache node'] as const)(
    '%s: 200 slow sockets do not stop a normal GET, and the header timeout closes them',
    async (which) => {
      const port = which === 'gateway' ? fx.port : nodePort;
      const path = which === 'gateway' ? `/${fx.volume}/models/small/config.json` : `/chunks/${id}`;
      const headers: Record<string, string> = which === 'gateway' ? {} : { authorization: `Bearer ${TOKEN}` };
      const attack = slowloris(port, SLOW_SOCKETS);
      try {
        // Let every slow socket connect and start dribbling first.
        await new Promise((resolve) => setTimeout(resolve, 1_200));
        const open = attack.sockets.filter((s) => !s.destroyed).length;
        expect(open).toBe(SLOW_SOCKETS);
        const normal = await timedGet(port, path, headers);
        expect(normal.status).toBe(200);
        expect(normal.ms).toBeLessThan(1_000);
        const closedAfter = await attack.closed;
        // Closed by the server's 2 s header timeout (checked every second), long before they finish.
        expect(Math.max(...closedAfter)).toBeLessThan(6_000);
        expect(Math.min(...closedAfter)).toBeGreaterThanOrEqual(1_900);
      } finally {
        attack.stop();
      }
    },
  );

  it('refuses a request head over the size limit with 431 on both', async () => {
    const long = `x=${'a'.repeat(20 * 1024)}`;
    expect((await rawRequest(fx.port, `/${fx.volume}/models/small/config.json?${long}`)).status).toBe(431);
    expect((await timedGet(nodePort, `/chunks/${id}?${long}`, { authorization: `Bearer ${TOKEN}` })).status).toBe(431);
    expect((await timedGet(nodePort, `/chunks/${id}`, { authorization: `Bearer ${TOKEN}`, 'x-big': 'b'.repeat(20 * 1024) })).status).toBe(
      431,
    );
  });
});

describe('global caps', () => {
  it('a node answers 503 with Retry-After beyond maxStreams, shares one disk read among hits of a chunk, and recovers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-limits-node-'));
    const metrics = createCacheMetrics();
    const cache = await DiskCache.open({ dir, capacity: 1 << 24 });
    const held = randomBytes(32 * 1024);
    const heldId = nativeChunkId(sha256Hex(held));
    await cache.put(heldId, held);
    let releaseUpstream: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      releaseUpstream = resolve;
    });
    const slow = randomBytes(16 * 1024);
    const slowId = nativeChunkId(sha256Hex(slow));
    let reads = 0;
    const read = cache.read.bind(cache);
    cache.read = async (chunk: ChunkId) => {
      reads += 1;
      return read(chunk);
    };
    const app = build({
      cache,
      tokens: { read: TOKEN, write: TOKEN },
      maxChunkBytes: 1 << 20,
      metrics,
      limits: cacheLimits({ maxStreams: 1 }),
      upstream: async (want) => {
        await gate;
        return want.id === slowId ? slow : undefined;
      },
    });
    const auth = { authorization: `Bearer ${TOKEN}` };
    try {
      const first = app.inject({ method: 'GET', url: `/chunks/${slowId}?size=${slow.length}`, headers: auth });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const busy = await app.inject({ method: 'GET', url: `/chunks/${heldId}`, headers: auth });
      expect(busy.statusCode).toBe(503);
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json().error).toBe('BUSY');
      releaseUpstream();
      expect((await first).rawPayload).toEqual(slow);

      // The cap lifted, 20 hits of one chunk at once (maxStreams 1 would refuse them one by one, so widen it).
      const wide = build({
        cache,
        tokens: { read: TOKEN, write: TOKEN },
        maxChunkBytes: 1 << 20,
        limits: cacheLimits({ maxStreams: 100, maxBytesInFlight: 1 << 20 }),
      });
      reads = 0;
      const hits = await Promise.all(
        Array.from({ length: 20 }, () => wide.inject({ method: 'GET', url: `/chunks/${heldId}`, headers: auth })),
      );
      expect(hits.map((h) => h.statusCode)).toEqual(Array(20).fill(200));
      expect(hits.every((h) => h.rawPayload.equals(held))).toBe(true);
      // A verified chunk file is streamed to each hit without a whole-chunk read; one that must be
      // hashed again is read (and hashed) once for all of them. Never once per hit.
      expect(reads).toBeLessThanOrEqual(1);
      await wide.close();
      expect((await app.inject({ method: 'GET', url: `/chunks/${heldId}`, headers: auth })).statusCode).toBe(200);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a node admits an upload before reading its body: past maxBytesInFlight it is 503 at once, and taken once there is room', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-limits-upload-'));
    const cache = await DiskCache.open({ dir, capacity: 1 << 24 });
    const metrics = createCacheMetrics();
    const app = build({
      cache,
      tokens: { read: TOKEN, write: TOKEN },
      maxChunkBytes: 1 << 20,
      metrics,
      limits: cacheLimits({ maxStreams: 100, maxBytesInFlight: 64 * 1024 }),
    });
    const { port } = await listen(app, '127.0.0.1:0');
    const [a, b] = [randomBytes(48 * 1024), randomBytes(48 * 1024)];
    const aId = nativeChunkId(sha256Hex(a));
    const bId = nativeChunkId(sha256Hex(b));
    const put = (id: string, bytes: Buffer, options: { hold?: boolean } = {}) => {
      const req = request({
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path: `/chunks/${id}`,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', 'content-length': bytes.length },
      });
      const answered = new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
        req.on('response', (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (t) => (body += t));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string, body }));
        });
        req.on('error', reject);
      });
      // Half the body, then wait: the upload is in flight and holds its declared size.
      req.write(bytes.subarray(0, bytes.length / 2));
      if (!options.hold) req.end(bytes.subarray(bytes.length / 2));
      return { answered, finish: () => req.end(bytes.subarray(bytes.length / 2)) };
    };
    try {
      const first = put(aId, a, { hold: true });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await metrics.registry.getSingleMetric('ferry_cache_inflight_bytes')?.get())?.values[0]?.value).toBe(a.length);
      const refused = await put(bId, b).answered;
      expect(refused).toMatchObject({ status: 503, retryAfter: '1' });
      expect(JSON.parse(refused.body).error).toBe('BUSY');
      first.finish();
      expect((await first.answered).status).toBe(201);
      expect((await put(bId, b).answered).status).toBe(201);
      expect(cache.has(aId) && cache.has(bId)).toBe(true);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the gateway answers SlowDown beyond maxStreams and serves again once a stream ends; anonymous requests may not set response-* headers', async () => {
    const fx = await startGateway({ anonymous: true, limits: { maxStreams: 1 }, memoryBytes: 0 });
    try {
      const big = randomBytes(6 * 2 ** 20);
      await fx.put('/models/big', { 'weights.bin': big });
      const url = `/${fx.volume}/models/big/weights.bin`;
      // A client that reads nothing keeps its stream (and its budget) open.
      const held = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: fx.port, path: url, agent: false }, resolve);
        req.on('error', reject);
        req.end();
      });
      expect(held.statusCode).toBe(200);
      const refused = await rawRequest(fx.port, url);
      expect(refused.status).toBe(503);
      expect(errorCode(refused.body)).toBe('SlowDown');
      held.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const served = await rawRequest(fx.port, url);
      expect(served.status).toBe(200);
      expect(served.body.equals(big)).toBe(true);

      const override = await rawRequest(fx.port, `${url}?response-content-type=text%2Fhtml`);
      expect(override.status).toBe(400);
      expect(errorCode(override.body)).toBe('InvalidRequest');
      expect(override.body.toString()).toContain('cannot be used for anonymous GET requests');
    } finally {
      await fx.close();
    }
  });
});
