import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheNodeClient } from '@ferry/cache';
import {
  AccessDeniedError,
  type ChunkRef,
  ConflictError,
  CorruptError,
  chunkKey,
  type Entry,
  nativeChunkId,
  sha256Hex,
  silentLogger,
} from '@ferry/core';
import { importPrefix, originStoreUrl } from '@ferry/importer';
import { type CacheMember, ChunkHashes } from '@ferry/meta';
import { openReader, openRegion } from '@ferry/region';
import { createCopyProcessor, createMetrics } from '@ferry/replicator';
import { createStore } from '@ferry/stores';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CacheRegions } from '../support/cache-cluster.js';
import { createRegions } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

// Credentials by role on a real cache node process, and the recorded hash of imported
// (external) chunks: nothing a reader holds can change the bytes another reader gets.

const CHUNK = 16 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let r: CacheRegions;
let node: CacheMember;
let reader: CacheNodeClient;
let writer: CacheNodeClient;
let hashes: ChunkHashes;
const origin = { a: randomBytes(3 * CHUNK + 100), b: randomBytes(2 * CHUNK) };
const imported: Record<'a' | 'b', Entry> = {} as Record<'a' | 'b', Entry>;

function slice(file: Buffer, index: number): Buffer {
  return file.subarray(index * CHUNK, (index + 1) * CHUNK);
}

/** One sample of the node's metrics, by its exact name and labels (0 while it has none). */
async function nodeMetric(sample: string): Promise<number> {
  const line = (await writer.metrics(node)).split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

beforeAll(async () => {
  r = await CacheRegions.create(inject('redisUrl'), { chunkSize: CHUNK, replicas: 1, roles: true });
  const originDir = join(r.root, 'origin');
  await mkdir(originDir, { recursive: true });
  await writeFile(join(originDir, 'a.bin'), origin.a);
  await writeFile(join(originDir, 'b.bin'), origin.b);
  const originUrl = originStoreUrl(`file://${originDir}`);
  await importPrefix({
    meta: r.source.meta,
    origin: createStore(originUrl),
    originUrl,
    target: '/imp',
    chunkSize: CHUNK,
  });
  await r.mirror.mirror.apply(await r.source.meta.log.readChanges((await r.mirror.mirror.cursor()) ?? '0-0'));
  imported.a = await r.mirror.meta.stat('/imp/a.bin');
  imported.b = await r.mirror.meta.stat('/imp/b.bin');
  expect(imported.a.chunks[0]?.id.startsWith('ext-')).toBe(true);
  await r.startNodes([{ id: 'n1', weight: 1, capacity: '64MiB' }]);
  node = (await r.members())[0] as CacheMember;
  reader = new CacheNodeClient({ token: r.readToken, connectTimeoutMs: 500 });
  writer = new CacheNodeClient({ token: r.writeToken, connectTimeoutMs: 500 });
  hashes = new ChunkHashes({ redis: r.mirror.redis, volume: r.volume });
});

afterAll(async () => {
  await reader?.close();
  await writer?.close();
  await r?.close();
});

describe('cache credentials by role', () => {
  it('a read token cannot PUT, DELETE or fill (403); the write token can; a read-through GET needs only the read token', async () => {
    const bytes = randomBytes(CHUNK);
    const id = nativeChunkId(sha256Hex(bytes));
    await expect(reader.put(node, id, bytes)).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(reader.delete(node, id)).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(reader.fill(node, { id, size: CHUNK })).rejects.toBeInstanceOf(AccessDeniedError);
    const raw = await fetch(`${node.url}/chunks/${id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${r.readToken}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(raw.status).toBe(403);
    expect(await reader.get(node, id)).toBeUndefined();

    expect(await writer.put(node, id, bytes)).toBe('stored');
    expect(await reader.get(node, id)).toEqual(bytes);
    await writer.delete(node, id);
    expect(await reader.get(node, id)).toBeUndefined();

    // A miss read through from the region's store with the read token: the node fills itself.
    const stored = randomBytes(CHUNK);
    const storedId = nativeChunkId(sha256Hex(stored));
    await r.mirror.store.put(chunkKey(storedId), stored);
    expect(await reader.get(node, storedId, { size: CHUNK })).toEqual(stored);
    expect(await reader.head(node, storedId)).toBe(CHUNK);
  });

  it('refuses a PUT of an external chunk whose hash the region has not recorded, whoever sends it', async () => {
    const ref = imported.a.chunks[1] as ChunkRef;
    expect(await hashes.get(ref.id)).toBeUndefined();
    const forged = Buffer.alloc(ref.size, 'A');
    const refused = writer.put(node, ref.id, forged);
    await expect(refused).rejects.toBeInstanceOf(ConflictError);
    await expect(refused).rejects.toThrow(/no verified hash/);
    await expect(reader.put(node, ref.id, forged)).rejects.toBeInstanceOf(AccessDeniedError);
    expect(await reader.head(node, ref.id)).toBeUndefined();
  });

  it('a verified fill from the origin records the hash; then the node and the reader reject altered bytes of that chunk', async () => {
    const ref = imported.a.chunks[0] as ChunkRef;
    const right = slice(origin.a, 0);
    expect(await writer.fill(node, { id: ref.id, size: ref.size, path: imported.a.path })).toBe('fetched');
    expect(await hashes.get(ref.id)).toBe(sha(right));

    // An upload of other bytes under the id is now refused as corrupt; the right bytes are accepted.
    const altered = Buffer.from(right);
    altered[100] = (altered[100] as number) ^ 0xff;
    await expect(writer.put(node, ref.id, altered)).rejects.toBeInstanceOf(CorruptError);
    expect(await writer.put(node, ref.id, right)).toBe('exists');

    // One byte flipped in the region's store copy: a node read-through and a reader both skip it.
    await r.mirror.store.put(chunkKey(ref.id), altered);
    await writer.delete(node, ref.id);
    const before = await nodeMetric('ferry_cache_corrupt_total{where="upstream"}');
    const url = `${node.url}/chunks/${ref.id}?size=${ref.size}&path=${encodeURIComponent(imported.a.path)}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${r.readToken}` } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(right);
    expect(await nodeMetric('ferry_cache_corrupt_total{where="upstream"}')).toBe(before + 1);

    const region = openRegion({ config: r.config, region: 'eu', role: 'client', logger: silentLogger });
    try {
      const files = openReader(region, { cache: false, memoryBytes: 0 });
      expect(await files.read(imported.a, 0, imported.a.size)).toEqual(origin.a);
      expect(files.chunks.stats.bad['store:eu']).toBe(1);
      expect(files.chunks.stats.chunks.origin).toBe(imported.a.chunks.length);
    } finally {
      await region.close();
    }
  });

  it('the copy worker records the hash of the first verified copy and refuses one that differs from it', async () => {
    const processor = createCopyProcessor({
      region: 'eu',
      source: r.source.store,
      target: r.mirror.store,
      originStore: (url) => createStore(url),
      presence: r.mirror.mirror,
      hashes,
      metrics: createMetrics(),
      logger: silentLogger,
    });
    const [first, second] = imported.b.chunks as [ChunkRef, ChunkRef];
    const originOf = (index: number) => ({
      store: imported.b.origin?.store as string,
      key: imported.b.origin?.key as string,
      etag: imported.b.origin?.etag as string,
      offset: index * CHUNK,
    });
    expect(await processor({ chunk: first.id, size: first.size, origin: originOf(0) })).toBe('copied');
    expect(await hashes.get(first.id)).toBe(sha(slice(origin.b, 0)));

    // A hash recorded first by someone else wins: a copy with other bytes is not stored.
    await hashes.record(second.id, 'f'.repeat(64));
    await expect(processor({ chunk: second.id, size: second.size, origin: originOf(1) })).rejects.toBeInstanceOf(CorruptError);
    await expect(r.mirror.store.head(chunkKey(second.id))).rejects.toThrow();
    expect(await r.mirror.mirror.isPresent(second.id)).toBe(false);
  });
});

describe('control API credentials by role', () => {
  it('the read token reads status and metrics; warmup and retry need the admin token (403 with the read token)', async () => {
    const readToken = `r-${randomBytes(8).toString('hex')}`;
    const adminToken = `a-${randomBytes(8).toString('hex')}`;
    const regions = await createRegions({ chunkSize: 64 * 1024, mirrors: { eu: { api: { readToken, adminToken } } } });
    const replicator = await startReplicator(regions, 'eu', { listen: '127.0.0.1:0' });
    try {
      const base = replicator.address as string;
      const as = (token: string | undefined, method: 'GET' | 'POST', path: string) =>
        fetch(`${base}${path}`, {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
          },
          ...(method === 'POST' ? { body: JSON.stringify({ paths: ['/x'] }) } : {}),
        });
      for (const token of [readToken, adminToken]) {
        expect((await as(token, 'GET', '/status')).status).toBe(200);
        expect((await as(token, 'GET', '/metrics')).status).toBe(200);
      }
      for (const path of ['/warmup', '/retry-failed']) {
        const denied = await as(readToken, 'POST', path);
        expect(denied.status, path).toBe(403);
        expect(await denied.json()).toEqual({ error: 'ACCESS_DENIED', message: 'this request needs the admin token' });
        expect((await as(undefined, 'POST', path)).status).toBe(401);
      }
      const retried = await as(adminToken, 'POST', '/retry-failed');
      expect(retried.status).toBe(200);
      expect(await retried.json()).toEqual({ retried: 0 });
      // No cache nodes in this region: the admin token gets past the check to a clear 409.
      expect((await as(adminToken, 'POST', '/warmup')).status).toBe(409);
    } finally {
      await replicator.stop();
      await regions.close();
    }
  });
});
