import { randomBytes } from 'node:crypto';
import { chunkKey, nativeChunkId, sha256Hex } from '@ferry/core';
import type { CopyRequest } from '@ferry/jobs';
import type { Meta } from '@ferry/meta';
import { MemoryStore } from '@ferry/stores';
import { describe, expect, it } from 'vitest';
import { RegionReader } from './region-reader.js';

describe('RegionReader backfill', () => {
  it('remembers at most backfillMemo queued chunks, forgetting the oldest first', async () => {
    const source = new MemoryStore();
    const queued: CopyRequest[] = [];
    const reader = new RegionReader({
      meta: {} as Meta,
      region: 'eu',
      store: new MemoryStore(),
      source: { name: 'src', store: source },
      backfill: async (requests) => {
        queued.push(...requests);
      },
      backfillMemo: 3,
      memoryBytes: 0,
      prefetch: 4,
    });
    const refs = [];
    for (let i = 0; i < 5; i++) {
      const bytes = randomBytes(100);
      const id = nativeChunkId(sha256Hex(bytes));
      await source.put(chunkKey(id), bytes);
      refs.push({ id, size: 100 });
    }
    for (const ref of refs) await reader.fetch(ref);
    expect(queued).toHaveLength(5);
    expect(reader.backfilled).toBe(3);
    // Still remembered: not queued again. Forgotten: queued again (harmless, jobs are keyed by chunk).
    await reader.fetch(refs[4] as (typeof refs)[number]);
    expect(queued).toHaveLength(5);
    await reader.fetch(refs[0] as (typeof refs)[number]);
    expect(queued).toHaveLength(6);
    expect(reader.backfilled).toBe(3);
  });
});
