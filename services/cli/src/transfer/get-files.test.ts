import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChunkRef, CorruptError, chunkKey, type Entry, nativeChunkId, sha256Hex } from '@ferry/core';
import type { Meta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { MemoryStore } from '@ferry/stores';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getFile } from './get-files.js';

/** A region store that remembers which chunks were read, in order. */
class RecordingStore extends MemoryStore {
  readonly reads: string[] = [];
  override get(key: string, options?: Parameters<MemoryStore['get']>[1]) {
    this.reads.push(key);
    return super.get(key, options);
  }
}

const CHUNK = 1024;

async function fileOf(store: MemoryStore, chunks: number, id: (bytes: Buffer, i: number) => string) {
  const parts = Array.from({ length: chunks }, () => randomBytes(CHUNK));
  const refs: ChunkRef[] = [];
  for (const [i, bytes] of parts.entries()) {
    const ref = { id: id(bytes, i), size: bytes.length } as ChunkRef;
    await store.put(chunkKey(ref.id), bytes);
    refs.push(ref);
  }
  const whole = Buffer.concat(parts);
  const entry: Entry = {
    path: '/m/model.safetensors',
    size: whole.length,
    mtime: Date.now(),
    version: '1-0',
    sha256: sha256Hex(whole),
    chunkSize: CHUNK,
    chunks: refs,
  };
  return { entry, whole };
}

describe('getFile', () => {
  let dir: string;
  let store: RecordingStore;
  let reader: RegionReader;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-get-'));
    store = new RecordingStore();
    // One chunk at a time, so the store sees the order the chunks were asked for.
    reader = new RegionReader({ meta: {} as Meta, region: 'eu', store, memoryBytes: 0, prefetch: 1 });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fetches a file of native chunks first chunk first, then from `start` on, wrapping around, and writes it whole', async () => {
    const { entry, whole } = await fileOf(store, 6, (bytes) => nativeChunkId(sha256Hex(bytes)));
    await getFile(entry, join(dir, 'out'), { reader, prefetch: 1, start: 3 });
    expect(store.reads).toEqual([0, 3, 4, 5, 1, 2].map((i) => chunkKey(entry.chunks[i]?.id as ChunkRef['id'])));
    expect((await readFile(join(dir, 'out'))).equals(whole)).toBe(true);
  });

  it('fetches a file with external chunks and a recorded sha256 in file order, and checks that sha256', async () => {
    const { entry, whole } = await fileOf(store, 4, (_, i) => `ext-${sha256Hex(Buffer.from(`origin ${i} ${Math.random()}`))}`);
    await getFile(entry, join(dir, 'out'), { reader, prefetch: 1, start: 2 });
    expect(store.reads).toEqual(entry.chunks.map((c) => chunkKey(c.id)));
    expect((await readFile(join(dir, 'out'))).equals(whole)).toBe(true);
    // The chunks alone cannot vouch for the file: a wrong recorded sha256 fails the get.
    await expect(getFile({ ...entry, sha256: '0'.repeat(64) }, join(dir, 'bad'), { reader, prefetch: 1 })).rejects.toBeInstanceOf(
      CorruptError,
    );
  });
});
