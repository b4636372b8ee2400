import { externalChunkId, InvalidArgumentError, nativeChunkId, sha256Hex } from '@ferry/core';
import { ChunkHashes, connectRedis } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueName } from '../support/random.js';

// The recorded hashes of external chunks, looked up and recorded by many copies at once: the
// calls made while one is in flight share a round trip, and still the first record of a chunk
// wins for everyone, in any mix of instances (processes) and calls.

let redis: Redis;
let other: Redis;

beforeAll(() => {
  redis = connectRedis(`${inject('redisUrl')}/0`);
  other = connectRedis(`${inject('redisUrl')}/0`);
});

afterAll(async () => {
  await Promise.all([redis?.quit(), other?.quit()]);
});

const ids = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => externalChunkId({ store: `file:///${tag}`, key: `k${i}`, etag: 'e', offset: 0, length: 10 }));
const hash = (text: string) => sha256Hex(text);

describe('ChunkHashes', () => {
  it('1,200 records of 600 chunks from two instances at once: one hash per chunk holds, and every caller is told that one', async () => {
    const volume = uniqueName('hashes');
    const chunks = ids(600, volume);
    // Small memos, so the later look-ups go to Redis and not to what an instance remembers.
    const a = new ChunkHashes({ redis, volume, memo: 10 });
    const b = new ChunkHashes({ redis: other, volume, memo: 10 });
    const told = await Promise.all(
      chunks.flatMap((id, i) => [
        a.record(id, hash(`a${i}`)).then((held) => [i, held] as const),
        b.record(id, hash(`b${i}`)).then((held) => [i, held] as const),
      ]),
    );
    const held = new Map<number, string>();
    for (const [i, sha] of told) {
      expect([hash(`a${i}`), hash(`b${i}`)]).toContain(sha);
      expect(held.get(i) ?? sha).toBe(sha);
      held.set(i, sha);
    }
    // Fresh instances read what holds, the look-ups of all chunks at once.
    const c = new ChunkHashes({ redis, volume, memo: 10 });
    const read = await Promise.all(chunks.map((id) => c.get(id)));
    expect(read).toEqual(chunks.map((_, i) => held.get(i)));
    // A later record with another hash is told the one that holds, and changes nothing.
    expect(await c.record(chunks[0] as (typeof chunks)[0], hash('late'))).toBe(held.get(0));
    expect(await new ChunkHashes({ redis, volume, memo: 10 }).get(chunks[0] as (typeof chunks)[0])).toBe(held.get(0));
  });

  it('a chunk with no record reads as undefined among others that have one; a native id or a non-hash is refused', async () => {
    const volume = uniqueName('hashes');
    const [known, unknown] = ids(2, volume) as [ReturnType<typeof externalChunkId>, ReturnType<typeof externalChunkId>];
    const hashes = new ChunkHashes({ redis, volume });
    await hashes.record(known, hash('known'));
    const fresh = new ChunkHashes({ redis, volume });
    expect(await Promise.all([fresh.get(known), fresh.get(unknown)])).toEqual([hash('known'), undefined]);
    await expect(hashes.get(nativeChunkId(hash('x')))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(hashes.record(unknown, 'not-a-hash')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await fresh.get(unknown)).toBeUndefined();
  });
});
