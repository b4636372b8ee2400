import { createHash, randomBytes } from 'node:crypto';
import { type ChunkId, type ChunkRef, CorruptError, externalChunkId, nativeChunkId } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { type KnownHashes, verifyHashedChunk } from './verify.js';

// verifyHashedChunk is what the replicator's whole-chunk copy checks bytes with: it must agree
// with the streaming hashedChunkVerifier on every case (native, external known, external unknown
// with and without establishing a record).

const bytes = randomBytes(3000);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const native: ChunkRef = { id: nativeChunkId(sha(bytes)), size: bytes.length };
const external: ChunkRef = {
  id: externalChunkId({ store: 'file:///o', key: 'k', etag: 'e', offset: 0, length: 3000 }),
  size: bytes.length,
};

/** A region's hash records in memory, with a count of records made. */
function records(initial: Record<string, string> = {}): KnownHashes & { recorded: number } {
  const held = new Map(Object.entries(initial));
  return {
    recorded: 0,
    async get(id: ChunkId) {
      return held.get(id);
    },
    async record(id: ChunkId, sha256: string) {
      this.recorded++;
      if (!held.has(id)) held.set(id, sha256);
      return held.get(id) as string;
    },
  };
}

describe('verifyHashedChunk', () => {
  it('a native chunk: its own bytes pass (with their hash), others and a wrong length are corrupt', async () => {
    expect(await verifyHashedChunk(native, bytes, 'the source')).toBe(sha(bytes));
    await expect(verifyHashedChunk(native, randomBytes(3000), 'the source')).rejects.toThrow(/sha256 mismatch/);
    await expect(verifyHashedChunk(native, bytes.subarray(1), 'the source')).rejects.toBeInstanceOf(CorruptError);
  });

  it('an external chunk with a recorded hash is checked against it', async () => {
    const hashes = records({ [external.id]: sha(bytes) });
    expect(await verifyHashedChunk(external, bytes, 'file:///o', { hashes, establish: true })).toBe(sha(bytes));
    await expect(verifyHashedChunk(external, randomBytes(3000), 'file:///o', { hashes })).rejects.toThrow(/sha256 mismatch/);
    expect(hashes.recorded).toBe(0);
  });

  it('an external chunk with none: only its length without establish; recorded first with it, and refused when another copy was recorded first', async () => {
    const hashes = records();
    expect(await verifyHashedChunk(external, bytes, 'a cache node', { hashes })).toBeUndefined();
    expect(hashes.recorded).toBe(0);
    await expect(verifyHashedChunk(external, bytes.subarray(1), 'a cache node', { hashes })).rejects.toBeInstanceOf(CorruptError);
    expect(await verifyHashedChunk(external, bytes, 'file:///o', { hashes, establish: true })).toBe(sha(bytes));
    expect(await hashes.get(external.id)).toBe(sha(bytes));
    const raced = records();
    raced.get = async () => undefined; // the look-up ran before another copy's record landed
    await raced.record(external.id, sha(randomBytes(10)));
    await expect(verifyHashedChunk(external, bytes, 'file:///o', { hashes: raced, establish: true })).rejects.toThrow(
      /differs from the copy this region verified first/,
    );
  });
});
