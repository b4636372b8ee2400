import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, createCacheMetrics, DiskCache, startScrub } from '@ferry/cache-node';
import { type ChunkId, nativeChunkId, sha256Hex, silentLogger } from '@ferry/core';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheLimits } from '../support/defaults.js';

/*
 * A cache node verifies a chunk when it enters and keeps the file's verified state (size, mtime,
 * inode): reads stream that file without hashing it again, a file changed behind the node's back
 * is hashed before it is served, a reader's report makes the node hash its copy and evict it when
 * wrong, and the background scrub evicts what rotted under an unchanged state.
 */

const TOKEN = 'node-token-123';
const auth = { authorization: `Bearer ${TOKEN}` };

function chunk(size = 64 * 1024): { id: ChunkId; bytes: Buffer } {
  const bytes = randomBytes(size);
  return { id: nativeChunkId(sha256Hex(bytes)), bytes };
}

/** Flip one bit in place, keeping the inode and putting the mtime back: rot the state cannot see. */
async function rot(file: string, at: number): Promise<void> {
  const before = await stat(file);
  const handle = await open(file, 'r+');
  try {
    const one = Buffer.alloc(1);
    await handle.read(one, 0, 1, at);
    one[0] = (one[0] ?? 0) ^ 0x10;
    await handle.write(one, 0, 1, at);
  } finally {
    await handle.close();
  }
  await utimes(file, before.atime, before.mtime);
  const after = await stat(file);
  expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);
}

const dirs: string[] = [];
const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function node() {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-cnv-'));
  dirs.push(dir);
  const metrics = createCacheMetrics();
  const cache = await DiskCache.open({ dir, capacity: 8 << 20, onEvict: (_id, reason) => metrics.evictions.inc({ reason }) });
  const app = build({ cache, tokens: { read: TOKEN, write: TOKEN }, maxChunkBytes: 4 << 20, limits: cacheLimits(), metrics });
  apps.push(app);
  const put = async (c: { id: ChunkId; bytes: Buffer }) => {
    const res = await app.inject({
      method: 'PUT',
      url: `/chunks/${c.id}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      payload: c.bytes,
    });
    expect(res.statusCode).toBe(201);
  };
  return { dir, cache, app, metrics, put };
}

async function metric(m: ReturnType<typeof createCacheMetrics>, name: string, labels?: Record<string, string>): Promise<number> {
  const found = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (found?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>;
  return values.filter((v) => !labels || Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((s, v) => s + v.value, 0);
}

describe('cache node verified state', () => {
  it('serves ranges of a verified file from disk; a file rewritten behind its back is hashed first and never served wrong', async () => {
    const { cache, app, metrics, put } = await node();
    const c = chunk();
    await put(c);
    const opened = await cache.openVerified(c.id);
    expect(opened).toMatchObject({ size: c.bytes.length });
    if (opened && opened !== 'unverified') await opened.handle.close();
    const range = await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: { ...auth, range: 'bytes=1000-66000' } });
    expect([range.statusCode, range.headers['content-range'], range.headers['content-length']]).toEqual([
      206,
      'bytes 1000-65535/65536',
      '64536',
    ]);
    expect(range.rawPayload.equals(c.bytes.subarray(1000))).toBe(true);

    const flipped = Buffer.from(c.bytes);
    flipped[7] = (flipped[7] ?? 0) ^ 1;
    await writeFile(cache.pathOf(c.id), flipped); // new mtime: not the verified file any more
    expect(await cache.openVerified(c.id)).toBe('unverified');
    expect((await app.inject({ method: 'GET', url: `/chunks/${c.id}`, headers: auth })).statusCode).toBe(404);
    expect(await metric(metrics, 'ferry_cache_corrupt_total', { where: 'disk' })).toBe(1);
    expect(cache.has(c.id)).toBe(false);
  });

  it('streams a large chunk and large ranges of it from its verified file, over a real socket', async () => {
    const { app, put } = await node();
    const big = chunk(3 * 2 ** 20 + 12_345);
    await put(big);
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const get = async (range?: string) => {
      const res = await fetch(`${address}/chunks/${big.id}`, { headers: { ...auth, ...(range ? { range } : {}) } });
      return { status: res.status, length: res.headers.get('content-length'), body: Buffer.from(await res.arrayBuffer()) };
    };
    const whole = await get();
    expect([whole.status, whole.length]).toEqual([200, String(big.bytes.length)]);
    expect(whole.body.equals(big.bytes)).toBe(true);
    const part = await get('bytes=1000-2500000');
    expect([part.status, part.length]).toEqual([206, '2499001']);
    expect(part.body.equals(big.bytes.subarray(1000, 2_500_001))).toBe(true);
    // Many at once share the reused read buffers without mixing their bytes.
    const many = await Promise.all(Array.from({ length: 6 }, () => get()));
    expect(many.every((r) => r.body.equals(big.bytes))).toBe(true);
  });

  it('a reader’s report makes the node hash its copy: a rotten one is evicted, a good one stays', async () => {
    const { cache, app, metrics, put } = await node();
    const bad = chunk();
    const good = chunk();
    await put(bad);
    await put(good);
    await rot(cache.pathOf(bad.id), 4321);
    // Reads do not hash: the rotten bytes go out as they are, and the reader's own check catches them.
    const served = await app.inject({ method: 'GET', url: `/chunks/${bad.id}`, headers: auth });
    expect(served.rawPayload.equals(bad.bytes)).toBe(false);
    const report = (id: ChunkId) => app.inject({ method: 'POST', url: `/chunks/${id}/bad`, headers: auth });
    expect((await report(bad.id)).json()).toEqual({ id: bad.id, state: 'evicted' });
    expect((await report(good.id)).json()).toEqual({ id: good.id, state: 'verified' });
    expect((await report(chunk().id)).json()).toMatchObject({ state: 'missing' });
    expect([cache.has(bad.id), cache.has(good.id)]).toEqual([false, true]);
    expect(await metric(metrics, 'ferry_cache_corrupt_total', { where: 'reported' })).toBe(1);
    expect(await metric(metrics, 'ferry_cache_evictions_total', { reason: 'corrupt' })).toBe(1);
    expect((await app.inject({ method: 'POST', url: `/chunks/${good.id}/bad`, headers: { authorization: 'Bearer x' } })).statusCode).toBe(
      401,
    );
  });

  it('the scrub re-hashes every held chunk at its rate and evicts the one that rotted', async () => {
    const { cache, metrics, put } = await node();
    const cs = [chunk(), chunk(), chunk()];
    for (const c of cs) await put(c);
    await rot(cache.pathOf(cs[1]?.id as ChunkId), 99);
    const scrub = startScrub({ cache, bytesPerSecond: 64 << 20, metrics, logger: silentLogger, idleMs: 50 });
    try {
      while ((await metric(metrics, 'ferry_cache_scrub_passes_total')) < 1) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await scrub.stop();
    }
    expect(cs.map((c) => cache.has(c.id))).toEqual([true, false, true]);
    expect(await metric(metrics, 'ferry_cache_corrupt_total', { where: 'scrub' })).toBe(1);
    expect(await metric(metrics, 'ferry_cache_scrubbed_bytes_total')).toBeGreaterThanOrEqual(3 * 64 * 1024);
  });

  it('the verified state survives a restart; a file changed while the node was down is hashed before it is served', async () => {
    const { dir, cache, put } = await node();
    const kept = chunk();
    const changed = chunk();
    await put(kept);
    await put(changed);
    const flipped = Buffer.from(changed.bytes);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    await writeFile(cache.pathOf(changed.id), flipped);
    const reopened = await DiskCache.open({ dir, capacity: 8 << 20 });
    const opened = await reopened.openVerified(kept.id);
    expect(opened).toMatchObject({ size: kept.bytes.length });
    if (opened && opened !== 'unverified') await opened.handle.close();
    expect(await reopened.openVerified(changed.id)).toBe('unverified');
    expect(await reopened.read(changed.id)).toBe('corrupt');
    expect(reopened.has(changed.id)).toBe(false);
  });
});
