import { ConflictError, type NewEntry, nativeChunkId, sha256Hex } from '@ferry/core';
import { connectRedis, FOLDER_BATCH, Meta } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../support/random.js';
import { type PrivateRedis, privateRedis } from '../support/servers/private-redis.js';

/*
 * A commit of more files than a function call can take arguments (V8 stops near 120,000) and
 * than one script may touch in 50 ms: bounded steps, each one record, none spread into a call;
 * a conflict anywhere in it refuses it before its first step. A server of its own, with SLOWLOG.
 */

let server: PrivateRedis;

beforeAll(async () => {
  server = await privateRedis({ raisedPriority: true });
});

afterAll(async () => {
  await server?.close();
});

const file = (path: string, i: number): NewEntry => ({
  path,
  size: 10,
  mtime: 1,
  chunkSize: 1024,
  chunks: [{ id: nativeChunkId(sha256Hex(`chunk ${i % 5000}`)), size: 10 }],
});

describe('a commit of 150,000 files', () => {
  it('commits them all in steps of one record each, no stack overflow, no Redis command of 50 ms', async () => {
    const redis = connectRedis(`${server.url}/0`, { name: 'wide-commit' });
    try {
      const meta = new Meta({ redis, volume: uniqueName('wide') });
      const count = 150_000;
      const entries = Array.from({ length: count }, (_, i) => file(`/wide/d${i % 100}/f${i}`, i));
      await server.cli('config', 'set', 'slowlog-log-slower-than', '50000');
      await server.cli('slowlog', 'reset');
      const result = await meta.commit(entries);
      const slow = (await redis.call('SLOWLOG', 'GET', '100')) as Array<[number, number, number, string[]]>;
      expect(result.entries).toHaveLength(count);
      expect(result.batches).toBe(count / FOLDER_BATCH.files);
      expect(await redis.hlen(meta.keys.entries)).toBe(count);
      expect(await redis.xlen(meta.keys.log)).toBe(count / FOLDER_BATCH.files);
      // Each entry carries the version of the record that wrote it; the last is the result's.
      expect(result.entries[0]?.version).not.toBe(result.version);
      expect(result.entries.at(-1)?.version).toBe(result.version);
      expect((await meta.stat('/wide/d7/f7')).version).toBe(result.entries[7]?.version);
      // A loaded 2-core machine can preempt Redis mid-command; a step that is slow by itself is slow in many of 600.
      const shown = JSON.stringify(slow.map(([, , us, args]) => `${us / 1000} ms ${args.slice(0, 3).join(' ')}`));
      expect(slow.length, `slow commands: ${shown}`).toBeLessThanOrEqual(3);
      expect(
        slow.every(([, , us]) => us < 400_000),
        `slow commands: ${shown}`,
      ).toBe(true);
    } finally {
      redis.disconnect();
    }
  }, 180_000);

  it('a commit of several steps with a path under an existing file at its end writes nothing, and says which', async () => {
    const redis = connectRedis(`${server.url}/1`, { name: 'wide-commit' });
    try {
      const meta = new Meta({ redis, volume: uniqueName('wide') });
      await meta.commit([file('/data/z', 0)]);
      const entries = Array.from({ length: 3 * FOLDER_BATCH.files }, (_, i) => file(`/data/a/f${String(i).padStart(4, '0')}`, i));
      entries.push(file('/data/z/under-a-file', 1));
      const before = await redis.xlen(meta.keys.log);
      const err = await meta.commit(entries).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toBe(
        'commit /data/z/under-a-file: is an existing directory, or under an existing file; nothing committed',
      );
      expect(await redis.xlen(meta.keys.log)).toBe(before);
      expect(await redis.hlen(meta.keys.entries)).toBe(1);
    } finally {
      redis.disconnect();
    }
  });
});
