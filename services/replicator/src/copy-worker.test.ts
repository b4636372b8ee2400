import { randomBytes } from 'node:crypto';
import { type ChunkId, chunkKey, nativeChunkId, sha256Hex, silentLogger } from '@ferry/core';
import type { CopyFailure } from '@ferry/meta';
import { MemoryStore } from '@ferry/stores';
import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { type ChunkPresence, copyJobHandler, createCopyProcessor } from './copy-worker.js';
import { createMetrics } from './metrics.js';

function setup() {
  const present = new Set<string>();
  const failures: CopyFailure[] = [];
  const presence: ChunkPresence = {
    isPresent: async (id) => present.has(id),
    markPresent: async (id) => {
      present.add(id);
      return true;
    },
    serverTime: async () => Date.now(),
    isReferenced: async () => true,
    recordCopyFailure: async (f) => void failures.push(f),
  };
  const source = new MemoryStore();
  const target = new MemoryStore();
  const metrics = createMetrics();
  const process = createCopyProcessor({ region: 'eu', source, target, presence, metrics, logger: silentLogger });
  return { present, failures, presence, source, target, metrics, process };
}

const counter = async (c: { get(): Promise<{ values: Array<{ value: number }> }> }) => (await c.get()).values[0]?.value ?? 0;

describe('copy worker', () => {
  it('marks a chunk the region store already holds whole as present, without reading the source', async () => {
    const { present, source, target, metrics, process } = setup();
    const bytes = randomBytes(1000);
    const chunk = nativeChunkId(sha256Hex(bytes));
    await target.put(chunkKey(chunk), bytes);
    expect(await process({ chunk, size: 1000 })).toBe('found');
    expect(present.has(chunk)).toBe(true);
    expect(await counter(metrics.chunksFound)).toBe(1);
    expect(await counter(metrics.bytesCopied)).toBe(0);
    // The source never had it: reading it would have failed.
    await expect(source.head(chunkKey(chunk))).rejects.toThrow();
  });

  it('copies a chunk whose object in the region store has the wrong size', async () => {
    const { source, target, metrics, process } = setup();
    const bytes = randomBytes(1000);
    const chunk = nativeChunkId(sha256Hex(bytes));
    await source.put(chunkKey(chunk), bytes);
    await target.put(chunkKey(chunk), bytes.subarray(0, 10));
    expect(await process({ chunk, size: 1000 })).toBe('copied');
    expect((await target.head(chunkKey(chunk))).size).toBe(1000);
    expect(await counter(metrics.bytesCopied)).toBe(1000);
  });

  it('records each failed attempt with the chunk, and fails a corrupt source chunk at once', async () => {
    const { failures, presence, source, process } = setup();
    const chunk = nativeChunkId(sha256Hex(randomBytes(8))) as ChunkId;
    await source.put(chunkKey(chunk), randomBytes(100));
    const handle = copyJobHandler(process, presence, silentLogger);
    const error = await handle({ data: { chunk, size: 100 }, attemptsMade: 2 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UnrecoverableError);
    expect(failures).toEqual([
      {
        chunk,
        code: 'CORRUPT',
        attempts: 3,
        at: expect.any(Number),
        error: expect.stringContaining('sha256 mismatch'),
        request: { chunk, size: 100 },
      },
    ]);
  });
});
