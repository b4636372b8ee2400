import { type NewEntry, nativeChunkId, sha256Hex, UnavailableError } from '@ferry/core';
import { compareIds, connectRedis, Meta, needsResync, pingRedis } from '@ferry/meta';
import { Redis } from 'ioredis';
import { afterAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { uniqueName } from '../support/random.js';
import { freePort } from '../support/servers/free-port.js';

function file(path: string, seed = path): NewEntry {
  return { path, size: 4, mtime: 1_700_000_000_000, chunkSize: 4, chunks: [{ id: nativeChunkId(sha256Hex(seed)), size: 4 }] };
}

let redis: Redis;
let meta: Meta;

beforeEach(() => {
  redis ??= connectRedis(inject('redisUrl'), { name: 'meta-log' });
  meta = new Meta({ redis, volume: uniqueName('v') });
});

afterAll(async () => {
  await redis?.quit();
});

describe('change log', () => {
  it('reads records after an id, in order, one per mutation', async () => {
    const a = await meta.commit([file('/a'), file('/b')]);
    const r = await meta.rename('/a', '/c');
    const d = await meta.delete('/b');
    const all = await meta.log.readChanges('0-0');
    expect(all.map((c) => [c.id, c.op])).toEqual([
      [a.version, 'put'],
      [r.version, 'rename'],
      [d.version, 'delete'],
    ]);
    expect(all[1]).toEqual({
      id: r.version,
      op: 'rename',
      put: [{ ...file('/c', '/a'), version: r.version }],
      del: ['/a'],
      time: expect.any(Number),
    });
    expect((await meta.log.readChanges(a.version)).map((c) => c.id)).toEqual([r.version, d.version]);
    expect((await meta.log.readChanges('0', { count: 1 })).map((c) => c.id)).toEqual([a.version]);
    expect(await meta.log.readChanges(d.version)).toEqual([]);
  });

  it('waits for the next record on its own connection, and close() ends the wait', async () => {
    const { version } = await meta.commit([file('/a')]);
    const waiting = meta.log.readChanges(version, { blockMs: 5_000 });
    // The shared connection is not held up by the blocking read.
    const next = await meta.commit([file('/b')]);
    expect((await waiting).map((c) => c.id)).toEqual([next.version]);
    expect(await meta.log.readChanges(next.version, { blockMs: 50 })).toEqual([]);
    const pending = meta.log.readChanges(next.version, { blockMs: 0 });
    await new Promise((r) => setTimeout(r, 50));
    await meta.close();
    expect(await pending).toEqual([]);
  });

  it('reports bounds, trims approximately or exactly, and tells when a cursor needs a resync', async () => {
    expect(await meta.log.logBounds()).toEqual({ length: 0, trimmed: 0 });
    expect(await meta.log.snapshotId()).toBe('0-0');
    const ids: string[] = [];
    for (let i = 0; i < 250; i++) ids.push((await meta.commit([file(`/f${i}`)])).version);
    const bounds = await meta.log.logBounds();
    expect(bounds).toEqual({ first: ids[0], last: ids[249], length: 250, trimmed: 0 });
    expect(needsResync('0-0', bounds)).toBe(false);
    const removed = await meta.log.trimLog(100);
    expect(removed).toBeGreaterThan(0);
    expect(removed).toBeLessThanOrEqual(150);
    const trimmed = await meta.log.logBounds();
    expect(trimmed).toMatchObject({ last: ids[249], length: 250 - removed, trimmed: removed });
    expect(needsResync('0-0', trimmed)).toBe(true);
    expect(needsResync(ids[249] as string, trimmed)).toBe(false);
    expect(await meta.log.trimLog(0, { exact: true })).toBe(250 - removed);
    const empty = await meta.log.logBounds();
    expect(empty).toEqual({ last: ids[249], length: 0, trimmed: 250 });
    expect(await meta.log.snapshotId()).toBe(ids[249]);
    expect(needsResync(ids[248] as string, empty)).toBe(true);
  });

  it('keeps the log around logMaxLen (XADD MAXLEN ~)', async () => {
    const small = new Meta({ redis, volume: meta.volume, logMaxLen: 100 });
    for (let i = 0; i < 50; i++) await small.commit(Array.from({ length: 10 }, (_, j) => file(`/f${i}-${j}`)));
    await Promise.all(Array.from({ length: 450 }, (_, i) => small.commit([file(`/g${i}`)])));
    const { length, trimmed } = await small.log.logBounds();
    expect(length).toBeLessThan(300);
    expect(length + trimmed).toBe(500);
  });

  it('lets a snapshot page through every entry', async () => {
    const batch = Array.from({ length: 2500 }, (_, i) => file(`/s/${i}`));
    // 2,500 files commit in steps of 250: each entry carries the version of its step's record.
    const { version, entries } = await meta.commit(batch);
    const versions = new Map(entries.map((e) => [e.path, e.version]));
    expect(await meta.log.snapshotId()).toBe(version);
    const seen = new Set<string>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await meta.scanEntries({ cursor, count: 500 });
      for (const e of page.entries) {
        expect(e.version).toBe(versions.get(e.path));
        seen.add(e.path);
      }
      cursor = page.cursor;
      pages++;
    } while (cursor);
    expect(seen.size).toBe(2500);
    expect(pages).toBeGreaterThan(1);
  });
});

describe('acks and reference counts', () => {
  it('keeps the highest ack of each region', async () => {
    expect(await meta.log.acks(['eu', 'us-west'])).toEqual({});
    expect(await meta.log.setAck('eu', '1700000000000-5')).toBe('1700000000000-5');
    expect(await meta.log.setAck('eu', '1700000000000-4')).toBe('1700000000000-5');
    expect(await meta.log.setAck('eu', '999999999999-9')).toBe('1700000000000-5');
    expect(await meta.log.setAck('eu', '1700000000001-0')).toBe('1700000000001-0');
    await meta.log.setAck('us-west', '5');
    expect(await meta.log.acks(['eu', 'us-west'])).toEqual({ eu: '1700000000001-0', 'us-west': '5-0' });
    // Each mirror's ack is a key of its own; an ack kept in the older shared hash is still read.
    expect(await redis.get(`ferry:{${meta.volume}}:ack:eu`)).toBe('1700000000001-0');
    await redis.hset(meta.keys.acks, 'ap', '7-0');
    expect(await meta.log.acks(['ap', 'eu'])).toEqual({ ap: '7-0', eu: '1700000000001-0' });
    await expect(meta.log.setAck('EU!', '1-0')).rejects.toThrow(/invalid region/);
    await expect(meta.log.setAck('eu', 'later')).rejects.toThrow(/invalid ack id/);
    expect(compareIds('10-0', '9-9')).toBeGreaterThan(0);
  });

  it('answers reference counts for many chunks at once', async () => {
    const ids = ['a', 'b', 'c'].map((s) => nativeChunkId(sha256Hex(s)));
    await meta.commit([file('/x', 'a'), file('/y', 'a'), file('/z', 'b')]);
    expect(await meta.refs.refCounts(ids)).toEqual([2, 1, 0]);
    expect(await meta.refs.refCounts([])).toEqual([]);
    await expect(meta.refs.refCount('nope')).rejects.toThrow(/invalid chunk id/);
  });
});

describe('an unreachable Redis', () => {
  it('is one UnavailableError line with the URL and no password', async () => {
    const port = await freePort();
    const url = `redis://:hunter2@127.0.0.1:${port}/0`;
    const client = connectRedis(url, { lazy: true });
    try {
      const err = await pingRedis(client).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toBe(`cannot reach Redis at redis://:***@127.0.0.1:${port}/0: connection refused`);
      const offline = new Meta({ redis: client, volume: 'v' });
      await expect(offline.stat('/x')).rejects.toThrow(`cannot reach Redis at redis://:***@127.0.0.1:${port}/0: connection refused`);
      await expect(offline.commit([file('/x')])).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      client.disconnect();
    }
  });

  it('names host, port and db for an injected client', async () => {
    const port = await freePort();
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await expect(pingRedis(client)).rejects.toThrow(new RegExp(`^cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/0: `));
    } finally {
      client.disconnect();
    }
  });
});
