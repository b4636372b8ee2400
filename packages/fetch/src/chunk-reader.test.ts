import { createHash, randomBytes } from 'node:crypto';
import { type ChunkRef, CorruptError, nativeChunkId, UnavailableError } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { ChunkReader } from './chunk-reader.js';
import type { Tier } from './tier.js';

const bytes = randomBytes(1000);
const ref: ChunkRef = { id: nativeChunkId(createHash('sha256').update(bytes).digest('hex')), size: bytes.length };
const tier = (name: string, get: Tier['get']): Tier => ({ name, get });
const absent = tier('store:eu', async () => undefined);
const unreachable = tier('source:src', async () => {
  throw new UnavailableError('cannot reach http://127.0.0.1:1 (ECONNREFUSED)');
});

describe('ChunkReader: what a read that no tier serves fails with', () => {
  it('is UnavailableError when a tier could only not be reached, and none had a wrong copy (a retry may work)', async () => {
    const reader = new ChunkReader({ tiers: [absent, unreachable] });
    const err = await reader.fetch(ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/no tier could serve it now \(source:src: cannot reach/);
  });

  it('is CorruptError once a tier served a wrong copy, even if another could not be reached', async () => {
    const wrong = tier('store:eu', async () => Buffer.from(randomBytes(1000)));
    const reader = new ChunkReader({ tiers: [wrong, unreachable] });
    const err = await reader.fetch(ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptError);
    expect((err as Error).message).toMatch(/no tier has a good copy/);
  });

  it('serves the chunk from the next tier that has a good copy', async () => {
    const reader = new ChunkReader({ tiers: [unreachable, tier('store:eu', async () => Buffer.from(bytes))] });
    expect((await reader.fetch(ref)).equals(bytes)).toBe(true);
  });
});
