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
    missing: async (ids) => ids.filter((id) => !present.has(id)),
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

  it('a batch job copies its chunks, skips those present, and fails for good, naming how many chunks failed, when one is corrupt', async () => {
    const { present, failures, presence, source, target, process } = setup();
    const good = Array.from({ length: 5 }, () => randomBytes(300));
    const ids = good.map((b) => nativeChunkId(sha256Hex(b)));
    for (const [i, b] of good.entries()) await source.put(chunkKey(ids[i] as ChunkId), b);
    present.add(ids[0] as string);
    const bad = nativeChunkId(sha256Hex(randomBytes(8))) as ChunkId;
    await source.put(chunkKey(bad), randomBytes(100));
    const handle = copyJobHandler(process, presence, silentLogger);
    const chunks = [...ids.map((chunk) => ({ chunk, size: 300 })), { chunk: bad, size: 100 }];
    const error = await handle({ name: 'copy-batch', data: { chunks }, attemptsMade: 0 }).catch((err: unknown) => err);
    // The only failure is permanent: another attempt cannot help; the others are copied, and the failure is kept with its chunk.
    expect(error).toBeInstanceOf(UnrecoverableError);
    expect((error as Error).message).toMatch(/^1 of 6 chunks of the batch failed, the first: .*sha256 mismatch/);
    expect(failures.map((f) => [f.chunk, f.code])).toEqual([[bad, 'CORRUPT']]);
    for (const id of ids) expect(present.has(id)).toBe(true);
    expect((await target.head(chunkKey(ids[0] as ChunkId)).catch(() => undefined))?.size).toBeUndefined();
    expect((await target.head(chunkKey(ids[4] as ChunkId))).size).toBe(300);
  });

  it('a batch job with a chunk the source cannot give yet fails to be retried', async () => {
    const { presence, source, process } = setup();
    const bytes = randomBytes(300);
    const ok = nativeChunkId(sha256Hex(bytes));
    await source.put(chunkKey(ok), bytes);
    const absent = nativeChunkId(sha256Hex(randomBytes(300)));
    const handle = copyJobHandler(process, presence, silentLogger);
    const error = await handle({
      name: 'copy-batch',
      data: { chunks: [absent, ok].map((chunk) => ({ chunk, size: 300 })) },
      attemptsMade: 0,
    }).catch((err: unknown) => err);
    expect(error).not.toBeInstanceOf(UnrecoverableError);
    expect((error as { code?: string }).code).toBe('TRANSIENT');
    expect(await presence.isPresent(ok)).toBe(true);
  });

  it('refuses a batch job whose data is not a list of chunks', async () => {
    const { presence, process } = setup();
    const handle = copyJobHandler(process, presence, silentLogger);
    await expect(handle({ name: 'copy-batch', data: { chunks: [{ chunk: '../etc/passwd', size: 1 }] }, attemptsMade: 0 })).rejects.toThrow(
      /invalid copy batch job: chunks.0.chunk: not a chunk id/,
    );
  });
});
