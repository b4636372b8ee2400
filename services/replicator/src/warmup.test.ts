import type { CacheNodeClient } from '@ferry/cache';
import { type ChunkId, type Entry, nativeChunkId, sha256Hex, silentLogger } from '@ferry/core';
import type { CacheMember, Membership, MirrorMeta } from '@ferry/meta';
import { DelayedError, type Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { createWarmProcessor, fillGroups } from './warmup.js';

const chunk = nativeChunkId(sha256Hex(Buffer.from('x')));
const node: CacheMember = { id: 'n1', url: 'http://127.0.0.1:1', weight: 1, capacity: 1, used: 0, seenMs: 0 };

function setup(present: boolean) {
  const fills: string[] = [];
  const client = {
    fill: async (n: { id: string }, ref: { id: ChunkId }) => {
      fills.push(`${ref.id}@${n.id}`);
      return 'fetched';
    },
  } as unknown as CacheNodeClient;
  const membership = { members: async () => [node] } as unknown as Membership;
  const mirror = { isPresent: async () => present } as unknown as MirrorMeta;
  const processor = createWarmProcessor({ client, membership, mirror, copyWaitMs: 60_000, recheckMs: 100, logger: silentLogger });
  const delays: number[] = [];
  const job = (ageMs: number) =>
    ({
      name: 'fill',
      data: { chunk, size: 1, node: 'n1' },
      timestamp: Date.now() - ageMs,
      moveToDelayed: async (ts: number) => {
        delays.push(ts);
      },
    }) as unknown as Job;
  return { processor, fills, delays, job };
}

describe('warm processor', () => {
  it('waits for the copy while the chunk is not in the region store (a delay, not a failed attempt)', async () => {
    const { processor, fills, delays, job } = setup(false);
    await expect(processor(job(0), 'token')).rejects.toBeInstanceOf(DelayedError);
    expect(delays).toHaveLength(1);
    expect(fills).toEqual([]);
  });

  it('fills once the chunk is present', async () => {
    const { processor, fills, job } = setup(true);
    await expect(processor(job(0), 'token')).resolves.toEqual({ state: 'fetched' });
    expect(fills).toEqual([`${chunk}@n1`]);
  });

  it('after copyWaitMs lets the node read through from the source', async () => {
    const { processor, fills, delays, job } = setup(false);
    await expect(processor(job(120_000), 'token')).resolves.toEqual({ state: 'fetched' });
    expect(delays).toEqual([]);
    expect(fills).toHaveLength(1);
  });
});

describe('fillGroups', () => {
  const id = (s: string) => nativeChunkId(sha256Hex(Buffer.from(s)));
  const entry = (path: string, chunks: string[]) =>
    ({ path, version: '1-0', size: chunks.length, mtime: 0, chunkSize: 1, chunks: chunks.map((c) => ({ id: id(c), size: 1 })) }) as Entry;

  it("puts every file's first chunk first, then one group per file, each placement once", () => {
    const entries = [entry('/a', ['a0', 'a1', 'shared']), entry('/b', ['b0', 'shared', 'b2'])];
    const placements = ['a0', 'b0', 'a1', 'shared', 'b2'].flatMap((c) => ['n1', 'n2'].map((node) => ({ chunk: id(c), size: 1, node })));
    const groups = fillGroups(entries, placements);
    const names = (g: Array<{ chunk: ChunkId; node: string }>) =>
      g.map((p) => `${['a0', 'a1', 'b0', 'b2', 'shared'].find((c) => id(c) === p.chunk)}@${p.node}`);
    expect(groups.map(names)).toEqual([
      ['a0@n1', 'a0@n2', 'b0@n1', 'b0@n2'],
      ['a1@n1', 'a1@n2', 'shared@n1', 'shared@n2'],
      ['b2@n1', 'b2@n2'],
    ]);
  });
});
