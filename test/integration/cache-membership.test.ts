import { createServer } from 'node:net';
import { CacheNodeClient, cacheTier, Heartbeat } from '@ferry/cache';
import { type ChunkId, nativeChunkId, sha256Hex } from '@ferry/core';
import { connectRedis, Membership, volumeKeys } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueName } from '../support/random.js';

const info = (port: number, weight = 1) => ({ url: `http://127.0.0.1:${port}`, weight, capacity: 100, used: 0 });

describe('cache membership in the region Redis', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = connectRedis(`${inject('redisUrl')}/12`);
  });
  afterAll(() => redis?.disconnect());

  it('lists nodes that heartbeat, drops silent ones after staleMs, removes leavers at once, skips garbage', async () => {
    const volume = uniqueName('members');
    const membership = new Membership({ redis, volume, staleMs: 1_000 });
    const a = new Heartbeat({ membership, id: 'a', info: () => info(1, 1), intervalMs: 200 });
    const b = new Heartbeat({ membership, id: 'b', info: () => info(2, 2), intervalMs: 200 });
    await Promise.all([a.start(), b.start(), membership.heartbeat('c', info(3, 3))]);
    const keys = volumeKeys(volume);
    await redis.hset(keys.nodes, 'bad', '{"url":"ftp://x","weight":1}');
    await redis.zadd(keys.seen, Date.now(), 'bad');
    expect((await membership.members()).map((m) => [m.id, m.weight, m.url])).toEqual([
      ['a', 1, 'http://127.0.0.1:1'],
      ['b', 2, 'http://127.0.0.1:2'],
      ['c', 3, 'http://127.0.0.1:3'],
    ]);
    // c never beats again: gone once its heartbeat is older than staleMs; a and b keep beating.
    await new Promise((r) => setTimeout(r, 1_300));
    expect((await membership.members()).map((m) => m.id)).toEqual(['a', 'b']);
    await a.stop();
    expect((await membership.members()).map((m) => m.id)).toEqual(['b']);
    expect(await redis.hexists(keys.nodes, 'a')).toBe(0);
    await b.stop();
    expect(await membership.members()).toEqual([]);
  });

  it('a dead or hung node costs one fast failure, then is skipped', async () => {
    // A port nothing listens on is refused at once; a node that accepts and never answers runs
    // into the request timeout.
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const hung = createServer(() => {});
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const members = [
      { id: 'dead', ...info(closed, 5), seenMs: 0 },
      { id: 'hung', ...info((hung.address() as { port: number }).port, 5), seenMs: 0 },
    ];
    const client = new CacheNodeClient({ token: 't', connectTimeoutMs: 200, requestTimeoutMs: 300, downForMs: 60_000 });
    const tier = cacheTier({ members: () => members, client, replicas: 2 });
    const ids: ChunkId[] = Array.from({ length: 200 }, (_, i) => nativeChunkId(sha256Hex(`chunk ${i}`)));
    try {
      const t0 = Date.now();
      expect(await tier.get({ id: ids[0] as ChunkId, size: 10 })).toBeUndefined();
      const first = Date.now() - t0;
      expect(first).toBeLessThan(3_000);
      expect(members.map((m) => client.isDown(m))).toEqual([true, true]);
      const t1 = Date.now();
      for (const id of ids) expect(await tier.get({ id, size: 10 })).toBeUndefined();
      expect(Date.now() - t1).toBeLessThan(200);
    } finally {
      await client.close();
      hung.close();
    }
  });

  it('a node slow to answer a read-through is waited for (readThroughTimeoutMs), other requests are not', async () => {
    // A node that fills a chunk for a crowd of cold readers answers late; giving up would send the
    // reader to the source. The same delay on a request that never reads through is a timeout.
    const bytes = Buffer.from('0123456789');
    const slow = createServer((socket) => {
      socket.once('data', () => {
        setTimeout(() => {
          socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${bytes.length}\r\nconnection: close\r\n\r\n${bytes}`);
        }, 800);
      });
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const node = { id: 'slow', url: `http://127.0.0.1:${(slow.address() as { port: number }).port}` };
    const client = new CacheNodeClient({ token: 't', connectTimeoutMs: 200, requestTimeoutMs: 300, readThroughTimeoutMs: 5_000 });
    const id = nativeChunkId(sha256Hex(bytes));
    try {
      expect(await client.get(node, id, { size: bytes.length })).toEqual(bytes);
      expect(client.isDown(node)).toBe(false);
      await expect(client.head(node, id)).rejects.toThrow(/HEADERS_TIMEOUT/);
      expect(client.isDown(node)).toBe(true);
    } finally {
      await client.close();
      slow.close();
    }
  });
});
