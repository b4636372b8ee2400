import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, createCacheMetrics, DiskCache, type Upstream } from '@ferry/cache-node';
import { type ChunkId, externalChunkId, nativeChunkId, sha256Hex } from '@ferry/core';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheLimits } from '../support/defaults.js';

const TOKEN = 'node-token-123';
const auth = { authorization: `Bearer ${TOKEN}` };

function chunk(size = 4096): { id: ChunkId; bytes: Buffer } {
  const bytes = randomBytes(size);
  return { id: nativeChunkId(sha256Hex(bytes)), bytes };
}

async function node(options: { capacity?: number; upstream?: Upstream; dir?: string; hashes?: Map<string, string> } = {}) {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'ferry-cn-')));
  dirs.push(dir);
  const metrics = createCacheMetrics();
  const cache = await DiskCache.open({
    dir,
    capacity: options.capacity ?? 1 << 20,
    onEvict: (_id, reason) => metrics.evictions.inc({ reason }),
  });
  const known = options.hashes;
  const app = build({
    cache,
    tokens: { read: TOKEN, write: TOKEN },
    maxChunkBytes: 1 << 20,
    limits: cacheLimits(),
    metrics,
    ...(options.upstream ? { upstream: options.upstream } : {}),
    ...(known ? { hashes: { get: async (id: string) => known.get(id) } } : {}),
  });
  apps.push(app);
  return { app, cache, dir, metrics };
}

const apps: FastifyInstance[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function metric(m: ReturnType<typeof createCacheMetrics>, name: string, labels?: Record<string, string>): Promise<number> {
  const found = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (found?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>;
  return values.filter((v) => !labels || Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((s, v) => s + v.value, 0);
}

describe('cache node HTTP API', () => {
  it('requires the token everywhere but /healthz and validates ids before touching the disk', async () => {
    const { app, dir } = await node();
    const c = chunk();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    for (const [method, url] of [
      ['GET', `/chunks/${c.id}`],
      ['PUT', `/chunks/${c.id}`],
      ['GET', '/metrics'],
      ['GET', '/inventory'],
    ] as const) {
      const res = await app.inject({ method, url, headers: { authorization: 'Bearer wrong' } });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.body).not.toContain(TOKEN);
    }
    for (const bad of ['sha256-..%2F..%2Fetc%2Fpasswd', `sha256-${'A'.repeat(64)}`, '..%2F..%2Fx', 'x']) {
      const put = await app.inject({ method: 'PUT', url: `/chunks/${bad}`, headers: auth, payload: c.bytes });
      expect(put.statusCode, bad).toBe(400);
      expect((await app.inject({ method: 'GET', url: `/chunks/${bad}?size=10`, headers: auth })).statusCode).toBe(400);
    }
    // Only the cache's own files: the temp dir and the verified-state log.
    expect((await readdir(dir)).sort()).toEqual(['.tmp', 'verified.log']);
  });

  it('stores verified bytes, refuses a corrupt body with 422 and keeps nothing of it, serves ranges', async () => {
    const { app, dir, metrics } = await node();
    const c = chunk(10_000);
    const flipped = Buffer.from(c.bytes);
    flipped[5] = (flipped[5] ?? 0) ^ 1;
    const bad = await app.inject({
      method: 'PUT',
      url: `/chunks/${c.id}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      payload: flipped,
    });
    expect(bad.statusCode).toBe(422);
    expect((await app.inject({ method: 'HEAD', url: `/chunks/${c.id}`, headers: auth })).statusCode).toBe(404);
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
    expect(await metric(metrics, 'ferry_cache_corrupt_total', { where: 'upload' })).toBe(1);

    const put = await app.inject({
      method: 'PUT',
      url: `/chunks/${c.id}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      payload: c.bytes,
    });
    expect(put.statusCode).toBe(201);
    const again = await app.inject({
      method: 'PUT',
      url: `/chunks/${c.id}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      payload: c.bytes,
    });
    expect(again.statusCode).toBe(200);
    const hex = c.id.slice(7);
    expect(await readFile(join(dir, hex.slice(0, 2), hex.slice(2, 4), c.id))).toEqual(c.bytes);
    const head = await app.inject({ method: 'HEAD', url: `/chunks/${c.id}`, headers: auth });
    expect([head.statusCode, head.headers['content-length']]).toEqual([200, '10000']);
    const get = await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: auth });
    expect(get.rawPayload).toEqual(c.bytes);
    const range = await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: { ...auth, range: 'bytes=100-199' } });
    expect([range.statusCode, range.headers['content-range']]).toEqual([206, 'bytes 100-199/10000']);
    expect(range.rawPayload).toEqual(c.bytes.subarray(100, 200));
    const suffix = await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: { ...auth, range: 'bytes=-10' } });
    expect(suffix.rawPayload).toEqual(c.bytes.subarray(9990));
    expect((await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: { ...auth, range: 'bytes=10000-' } })).statusCode).toBe(416);
    expect((await app.inject({ method: 'DELETE', url: `/chunks/${c.id}`, headers: auth })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: auth })).statusCode).toBe(404);
  });

  it('takes an external chunk upload only against its recorded hash, and checks a stored sha256 on read', async () => {
    const hashes = new Map<string, string>();
    const { app, cache, metrics } = await node({ hashes });
    const bytes = randomBytes(5000);
    const id = externalChunkId({ store: 's3://b/p', key: 'k', etag: 'e', offset: 0, length: 5000 });
    const put = (payload: Buffer, size = payload.length) =>
      app.inject({
        method: 'PUT',
        url: `/chunks/${id}`,
        headers: { ...auth, 'x-ferry-size': String(size), 'content-type': 'application/octet-stream' },
        payload,
      });
    // No hash recorded yet (no verified fill from the origin): refused, whatever the bytes.
    expect((await put(bytes)).statusCode).toBe(409);
    hashes.set(id, sha256Hex(bytes));
    const other = Buffer.from(bytes);
    other[0] = (other[0] ?? 0) ^ 1;
    expect((await put(other)).statusCode).toBe(422);
    const short = await app.inject({
      method: 'PUT',
      url: `/chunks/${id}`,
      headers: { ...auth, 'x-ferry-size': '5001', 'content-type': 'application/octet-stream' },
      payload: bytes,
    });
    expect(short.statusCode).toBe(422);
    const ok = await app.inject({
      method: 'PUT',
      url: `/chunks/${id}`,
      headers: { ...auth, 'x-ferry-size': '5000', 'content-type': 'application/octet-stream' },
      payload: bytes,
    });
    expect(ok.statusCode).toBe(201);
    const file = cache.pathOf(id);
    const raw = await readFile(file);
    raw[10] = (raw[10] ?? 0) ^ 0x80;
    await writeFile(file, raw);
    expect((await app.inject({ method: 'GET', url: `/chunks/${id}`, headers: auth })).statusCode).toBe(404);
    expect(await metric(metrics, 'ferry_cache_corrupt_total', { where: 'disk' })).toBe(1);
    expect(cache.has(id)).toBe(false);
  });

  it('evicts least recently used chunks to stay under capacity, and rebuilds that order after a restart', async () => {
    const { app, cache, dir, metrics } = await node({ capacity: 3 * 4096 });
    const cs = [chunk(), chunk(), chunk(), chunk(), chunk()];
    const put = (c: { id: ChunkId; bytes: Buffer }) =>
      app.inject({
        method: 'PUT',
        url: `/chunks/${c.id}`,
        headers: { ...auth, 'content-type': 'application/octet-stream' },
        payload: c.bytes,
      });
    for (const c of cs.slice(0, 3)) expect((await put(c)).statusCode).toBe(201);
    // Use the oldest, so the second is now the least recently used.
    expect((await app.inject({ method: 'GET', url: `/chunks/${cs[0]?.id}`, headers: auth })).statusCode).toBe(200);
    expect((await put(cs[3] as { id: ChunkId; bytes: Buffer })).statusCode).toBe(201);
    expect(cs.map((c) => cache.has(c.id))).toEqual([true, false, true, true, false]);
    expect(cache.used).toBe(3 * 4096);
    expect(await metric(metrics, 'ferry_cache_evictions_total', { reason: 'lru' })).toBe(1);

    // A restart: mtimes give the use order (oldest: cs[2], then cs[0], then cs[3]); partial writes vanish.
    const t = Date.now() / 1000;
    await utimes(cache.pathOf(cs[2]?.id as ChunkId), t - 30, t - 30);
    await utimes(cache.pathOf(cs[0]?.id as ChunkId), t - 20, t - 20);
    await utimes(cache.pathOf(cs[3]?.id as ChunkId), t - 10, t - 10);
    await writeFile(join(dir, '.tmp', `${cs[4]?.id}.abc`), 'partial');
    const reopened = await DiskCache.open({ dir, capacity: 3 * 4096 });
    expect(reopened.count).toBe(3);
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
    await reopened.put(cs[4]?.id as ChunkId, cs[4]?.bytes as Buffer);
    expect(cs.map((c) => reopened.has(c.id))).toEqual([true, false, false, true, true]);
    const smaller = await DiskCache.open({ dir, capacity: 2 * 4096 });
    expect(cs.map((c) => smaller.has(c.id))).toEqual([false, false, false, true, true]);
  });

  it('reads a miss through once for many concurrent requests, and fills, lists and answers has', async () => {
    const c = chunk(200_000);
    let calls = 0;
    const upstream: Upstream = async (want) => {
      calls += 1;
      await new Promise((r) => setTimeout(r, 100));
      return want.id === c.id ? c.bytes : undefined;
    };
    const { app, metrics } = await node({ upstream });
    const gets = await Promise.all(
      Array.from({ length: 32 }, () => app.inject({ method: 'GET', url: `/chunks/${c.id}?size=${c.bytes.length}`, headers: auth })),
    );
    expect(gets.every((g) => g.statusCode === 200 && g.rawPayload.equals(c.bytes))).toBe(true);
    expect(calls).toBe(1);
    expect(await metric(metrics, 'ferry_cache_upstream_fetches_total')).toBe(1);
    expect(await metric(metrics, 'ferry_cache_bytes_served_total')).toBe(32 * c.bytes.length);

    const other = chunk();
    const missing = await app.inject({ method: 'POST', url: `/chunks/${other.id}/fill?size=4096`, headers: auth });
    expect(missing.statusCode).toBe(404);
    const held = await app.inject({ method: 'POST', url: `/chunks/${c.id}/fill?size=${c.bytes.length}`, headers: auth });
    expect(held.json()).toEqual({ id: c.id, state: 'held' });
    const has = await app.inject({ method: 'POST', url: '/chunks/has', headers: auth, payload: { ids: [c.id, other.id] } });
    expect(has.json()).toEqual({ has: [c.id] });
    const inv = await app.inject({ method: 'GET', url: '/inventory?limit=1', headers: auth });
    expect(inv.json().items).toEqual([{ id: c.id, size: c.bytes.length }]);
    expect(inv.json().cursor).toBeUndefined();
    // No size, no read-through.
    expect((await app.inject({ method: 'GET', url: `/chunks/${other.id}`, headers: auth })).statusCode).toBe(404);
    expect(calls).toBe(2);
  });
});
