import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidPathError, LocalIoError, type NewEntry, nativeChunkId, sha256Hex } from '@ferry/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkFile, type FileChunk, type PutInput } from './chunking.js';

async function collect(input: PutInput, chunkSize: number): Promise<{ chunks: FileChunk[]; entry: NewEntry | undefined }> {
  const chunks: FileChunk[] = [];
  let entry: NewEntry | undefined;
  for await (const c of chunkFile(input, { chunkSize, onEntry: (e) => (entry = e) })) chunks.push({ ...c, bytes: Buffer.from(c.bytes) });
  return { chunks, entry };
}

describe('chunkFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-writer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([0, 1, 999, 1000, 1001, 3500])('cuts %i bytes into chunks named by content, the same from disk and from memory', async (size) => {
    const bytes = randomBytes(size);
    const local = join(dir, `f${size}`);
    await writeFile(local, bytes);
    const fromDisk = await collect({ local, path: '/m/f', size, mtime: 5 }, 1000);
    const fromMemory = await collect({ path: '/m/f', bytes, mtime: 5 }, 1000);
    for (const { chunks, entry } of [fromDisk, fromMemory]) {
      expect(chunks.map((c) => c.ref.size)).toEqual(
        Array.from({ length: Math.ceil(size / 1000) }, (_, i) => Math.min(1000, size - i * 1000)),
      );
      for (const c of chunks) expect(c.ref.id).toBe(nativeChunkId(sha256Hex(c.bytes)));
      expect(Buffer.concat(chunks.map((c) => c.bytes)).equals(bytes)).toBe(true);
      expect(entry).toEqual({ path: '/m/f', size, mtime: 5, sha256: sha256Hex(bytes), chunkSize: 1000, chunks: chunks.map((c) => c.ref) });
    }
  });

  it('fails, and gives no entry, when a local file grew after it was planned', async () => {
    const local = join(dir, 'grows');
    await writeFile(local, randomBytes(2000));
    await appendFile(local, 'more');
    await expect(collect({ local, path: '/m/grows', size: 2000, mtime: 0 }, 1000)).rejects.toBeInstanceOf(LocalIoError);
  });

  it('refuses an in-memory file whose path is no volume path before its first chunk', async () => {
    const chunks = chunkFile({ path: '/m/../x', bytes: Buffer.from('x') }, { chunkSize: 1000, onEntry: () => {} });
    await expect(chunks.next()).rejects.toBeInstanceOf(InvalidPathError);
  });
});
