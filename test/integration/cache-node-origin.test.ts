import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheNodeClient, cacheTier } from '@ferry/cache';
import { build, createCacheMetrics, DiskCache, listen, regionUpstream } from '@ferry/cache-node';
import type { ChunkRef, Entry } from '@ferry/core';
import { importPrefix, originStoreUrl } from '@ferry/importer';
import { connectRedis, Meta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { createStore, type ObjectStore } from '@ferry/stores';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CACHE_CLIENT, cacheLimits, READER } from '../support/defaults.js';
import { uniqueName } from '../support/random.js';

// A cache node fills an imported file's external chunks from the origin object that the
// region's own metadata records for the file the request names, and refuses a file that does not
// list the chunk without reading anything.

const TOKEN = 'origin-node-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const CHUNK = 16 * 1024;

let redis: Redis;
let meta: Meta;
let work: string;
let originDir: string;
const files = { a: randomBytes(3 * CHUNK + 500), b: randomBytes(2 * CHUNK) };
let entries: { a: Entry; b: Entry };
/** Origin stores opened by the node, by URL: a refused request must open none. */
const opened: string[] = [];
const apps: FastifyInstance[] = [];

async function node() {
  const dir = await mkdtemp(join(work, 'node-'));
  const metrics = createCacheMetrics();
  const cache = await DiskCache.open({ dir, capacity: 1 << 20 });
  // The region's store holds none of the chunks: an external chunk can only come from its origin.
  const region = createStore(`file://${await mkdtemp(join(work, 'region-'))}`);
  const upstream = regionUpstream({
    store: { name: 'store:r', store: region },
    openOrigin: (url): ObjectStore => {
      opened.push(url);
      return createStore(url);
    },
  });
  const app = build({
    cache,
    tokens: { read: TOKEN, write: TOKEN },
    maxChunkBytes: CHUNK,
    limits: cacheLimits(),
    metrics,
    upstream,
    entries: meta,
  });
  apps.push(app);
  return { app, cache, metrics };
}

function chunkAt(entry: Entry, index: number): { ref: ChunkRef; offset: number } {
  const ref = entry.chunks[index] as ChunkRef;
  return { ref, offset: index * CHUNK };
}

async function upstreamFetches(metrics: ReturnType<typeof createCacheMetrics>): Promise<number> {
  const found = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'ferry_cache_upstream_fetches_total');
  return ((found?.values ?? []) as Array<{ value: number }>).reduce((s, v) => s + v.value, 0);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ferry-cn-origin-'));
  originDir = join(work, 'origin');
  await mkdir(originDir);
  await writeFile(join(originDir, 'a.bin'), files.a);
  await writeFile(join(originDir, 'b.bin'), files.b);
  redis = connectRedis(inject('redisUrl'), { name: 'cache-node-origin' });
  meta = new Meta({ redis, volume: uniqueName('cno') });
  const originUrl = originStoreUrl(`file://${originDir}`);
  await importPrefix({ meta, origin: createStore(originUrl), originUrl, target: '/imp', chunkSize: CHUNK });
  entries = { a: await meta.stat('/imp/a.bin'), b: await meta.stat('/imp/b.bin') };
  expect(entries.a.chunks.map((c) => c.id.slice(0, 4))).toEqual(['ext-', 'ext-', 'ext-', 'ext-']);
});

afterAll(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  redis?.disconnect();
  await rm(work, { recursive: true, force: true });
});

describe('cache node read-through from an origin', () => {
  it('fills an imported external chunk from its file:// origin, at the chunk offset, and keeps it', async () => {
    const { app, cache, metrics } = await node();
    const { ref, offset } = chunkAt(entries.a, 1);
    // Without the file the node cannot know the origin: the region's stores do not have it.
    const bare = await app.inject({ method: 'GET', url: `/chunks/${ref.id}?size=${ref.size}`, headers: auth });
    expect(bare.statusCode).toBe(404);
    expect(opened).toEqual([]);

    const url = `/chunks/${ref.id}?size=${ref.size}&path=${encodeURIComponent(entries.a.path)}`;
    const got = await app.inject({ method: 'GET', url, headers: auth });
    expect(got.statusCode).toBe(200);
    expect(got.headers['x-ferry-cache']).toBe('fill');
    expect(got.rawPayload).toEqual(files.a.subarray(offset, offset + ref.size));
    expect(cache.has(ref.id)).toBe(true);
    expect(opened).toEqual([entries.a.origin?.store]);

    // The last, shorter chunk through POST fill; then both are served from disk.
    const last = chunkAt(entries.a, 3);
    const fill = await app.inject({
      method: 'POST',
      url: `/chunks/${last.ref.id}/fill?size=${last.ref.size}&path=${encodeURIComponent(entries.a.path)}`,
      headers: auth,
    });
    expect(fill.json()).toEqual({ id: last.ref.id, state: 'fetched' });
    const held = await app.inject({ method: 'GET', url: `/chunks/${last.ref.id}`, headers: auth });
    expect(held.headers['x-ferry-cache']).toBe('hit');
    expect(held.rawPayload).toEqual(files.a.subarray(last.offset));
    expect(await upstreamFetches(metrics)).toBe(3);
  });

  it('serves a reader through the cache tier, which names the file of each external chunk', async () => {
    const { app } = await node();
    const bound = await listen(app, '127.0.0.1:0');
    const client = new CacheNodeClient({ token: TOKEN, ...CACHE_CLIENT });
    try {
      const tier = cacheTier({
        members: () => [{ id: 'n1', url: `http://127.0.0.1:${bound.port}`, weight: 1, capacity: 1 << 20, used: 0, seenMs: Date.now() }],
        client,
        replicas: 1,
      });
      // No origin tier and an empty store: every byte must come through the node.
      const reader = new RegionReader({
        meta,
        region: 'r',
        store: createStore(`file://${await mkdtemp(join(work, 'empty-'))}`),
        cache: tier,
        ...READER,
      });
      expect(await reader.read(entries.a, 0, files.a.length)).toEqual(files.a);
      expect(reader.chunks.stats.chunks.cache).toBe(entries.a.chunks.length);
    } finally {
      await client.close();
    }
  });

  it('refuses a path whose entry does not list the chunk, and reads nothing', async () => {
    const { app, cache, metrics } = await node();
    const before = opened.length;
    const { ref } = chunkAt(entries.a, 0);
    for (const path of [entries.b.path, '/imp/missing.bin', '/imp/../etc/passwd', 'file:///etc/passwd']) {
      const url = `/chunks/${ref.id}?size=${ref.size}&path=${encodeURIComponent(path)}`;
      const get = await app.inject({ method: 'GET', url, headers: auth });
      expect(get.statusCode, path).toBe(400);
      const fill = await app.inject({ method: 'POST', url: url.replace('?', '/fill?'), headers: auth });
      expect(fill.statusCode, path).toBe(400);
    }
    // The right file with the wrong size is refused too.
    const wrongSize = await app.inject({
      method: 'GET',
      url: `/chunks/${ref.id}?size=${ref.size - 1}&path=${encodeURIComponent(entries.a.path)}`,
      headers: auth,
    });
    expect(wrongSize.statusCode).toBe(400);
    expect(opened.length).toBe(before);
    expect(await upstreamFetches(metrics)).toBe(0);
    expect(cache.has(ref.id)).toBe(false);
  });

  it('fails a chunk of an origin object that changed since import (etag guard), and keeps nothing', async () => {
    const { app, cache } = await node();
    const tmp = join(originDir, 'b.bin.tmp-write');
    await writeFile(tmp, randomBytes(files.b.length));
    await rename(tmp, join(originDir, 'b.bin'));
    const { ref } = chunkAt(entries.b, 0);
    const got = await app.inject({
      method: 'GET',
      url: `/chunks/${ref.id}?size=${ref.size}&path=${encodeURIComponent(entries.b.path)}`,
      headers: auth,
    });
    expect(got.statusCode).toBe(412);
    expect(got.json()).toMatchObject({ error: 'PRECONDITION_FAILED' });
    expect(cache.has(ref.id)).toBe(false);
    expect(await readdir(join(cache.dir, '.tmp'))).toEqual([]);
  });
});
