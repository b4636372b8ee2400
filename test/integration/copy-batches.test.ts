import { randomBytes } from 'node:crypto';
import { type ChunkId, nativeChunkId } from '@ferry/core';
import { CopyQueue } from '@ferry/jobs';
import { connectRedis, copyBatchesKey } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { COPY_QUEUE } from '../support/defaults.js';
import { uniqueName } from '../support/random.js';

/*
 * Small chunks share copy jobs, and a hash beside the queue names each one's job so a producer
 * does not queue it again. A process that dies between a job's end and its settle leaves names
 * behind: the reconciler's sweep drops those whose job is gone and keeps the rest. Real Redis,
 * real BullMQ.
 */

const redis = connectRedis(`${inject('redisUrl')}/5`, { name: 'copy-batches' }) as Redis;
afterAll(() => redis.quit());

const small = (n: number) =>
  Array.from({ length: n }, () => ({ chunk: nativeChunkId(randomBytes(32).toString('hex')) as ChunkId, size: 100, first: true }));

describe('the batches hash', () => {
  it('names each small chunk with its job, and a sweep drops only the names of jobs that are gone', async () => {
    const volume = uniqueName('cb');
    const queue = new CopyQueue({ connection: redis, volume, ...COPY_QUEUE });
    try {
      const a = small(10);
      const b = small(10);
      await queue.enqueue(a);
      await queue.enqueue(b);
      const names = await redis.hgetall(copyBatchesKey(volume));
      expect(Object.keys(names).sort()).toEqual([...a, ...b].map((r) => r.chunk).sort());
      const jobA = names[a[0]?.chunk as string] as string;
      const jobB = names[b[0]?.chunk as string] as string;
      expect(jobA).not.toBe(jobB);
      expect(await queue.sweepBatches()).toBe(0);
      // Job A ends without its settle (its process died right then).
      await queue.queue.remove(jobA);
      expect(await queue.sweepBatches()).toBe(10);
      const left = await redis.hgetall(copyBatchesKey(volume));
      expect(Object.keys(left).sort()).toEqual(b.map((r) => r.chunk).sort());
      expect(new Set(Object.values(left))).toEqual(new Set([jobB]));
      // A's chunks can be queued again: the probe no longer finds them held.
      expect((await queue.enqueue(a)).queued).toBe(10);
    } finally {
      await queue.queue.obliterate({ force: true });
      await queue.close();
    }
  });
});
