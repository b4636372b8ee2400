import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChunkRef, chunkKey, type Entry, type FerryConfig, parseConfig, sha256Hex, silentLogger } from '@ferry/core';
import { storeTier } from '@ferry/fetch';
import { CopyQueue } from '@ferry/jobs';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { Replicator } from '@ferry/replicator';
import { FsStore, type GetOptions, type ObjectStore } from '@ferry/stores';
import { planPut, putFiles } from '@ferry/writer';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readStream } from '../support/bytes.js';
import { COPY_QUEUE, READER } from '../support/defaults.js';
import { uniqueName } from '../support/random.js';
import { waitFor } from '../support/regions.js';

const CHUNK = 1 << 20;

/** Counts chunk gets per key, so a test can say how often each chunk left the source. */
class CountingStore extends FsStore {
  readonly gets = new Map<string, number>();
  override get(key: string, options?: GetOptions) {
    this.gets.set(key, (this.gets.get(key) ?? 0) + 1);
    return super.get(key, options);
  }
}

interface Regions {
  config: FerryConfig;
  volume: string;
  source: { store: CountingStore; meta: Meta; redis: Redis };
  mirror: { store: FsStore; meta: Meta; mirror: MirrorMeta; redis: Redis; copies: CopyQueue };
  close(): Promise<void>;
}

/**
 * A source and a mirror region whose mirror knows the file (its change applied) but holds none
 * of its chunks: the state right after metadata arrives and before any copy.
 */
async function regionsWithFile(bytes: Buffer): Promise<Regions & { entry: Entry }> {
  const volume = uniqueName('reader');
  const root = await mkdtemp(join(tmpdir(), 'ferry-reader-'));
  const redisUrl = inject('redisUrl');
  const config = parseConfig({
    volume,
    chunkSize: CHUNK,
    source: 'src',
    regions: {
      src: { store: `file://${root}/src`, redis: `${redisUrl}/4` },
      eu: { store: `file://${root}/eu`, redis: `${redisUrl}/5` },
    },
  });
  const sourceRedis = connectRedis(`${redisUrl}/4`);
  const mirrorRedis = connectRedis(`${redisUrl}/5`, { maxRetriesPerRequest: null });
  const source = {
    store: new CountingStore({ root: `${root}/src`, fsync: false }),
    meta: new Meta({ redis: sourceRedis, volume }),
    redis: sourceRedis,
  };
  const mirrorMeta = new MirrorMeta({ redis: mirrorRedis, volume });
  const mirror = {
    store: new FsStore({ root: `${root}/eu`, fsync: false }),
    meta: new Meta({ redis: mirrorRedis, volume }),
    mirror: mirrorMeta,
    redis: mirrorRedis,
    copies: new CopyQueue({ connection: mirrorRedis, volume, ...COPY_QUEUE }),
  };
  const local = join(root, 'model.bin');
  await writeFile(local, bytes);
  const { files } = await planPut(local, '/models/m/model.bin');
  await putFiles({
    store: source.store,
    meta: source.meta,
    files,
    chunkSize: CHUNK,
    concurrency: 4,
    holdTtlMs: config.writer.holdTtl,
    logger: silentLogger,
  });
  await mirrorMeta.apply(await source.meta.log.readChanges('0-0'));
  source.store.gets.clear();
  return {
    config,
    volume,
    source,
    mirror,
    entry: await mirror.meta.stat('/models/m/model.bin'),
    async close() {
      await mirror.copies.close();
      sourceRedis.disconnect();
      mirrorRedis.disconnect();
    },
  };
}

function readerOf(r: Regions, store: ObjectStore = r.mirror.store): RegionReader {
  return new RegionReader({
    meta: r.mirror.meta,
    region: 'eu',
    store,
    source: { name: 'src', store: r.source.store },
    backfill: async (requests) => void (await r.mirror.copies.enqueue(requests)),
    memoryBytes: 0,
    prefetch: READER.prefetch,
  });
}

describe('reading in a mirror region', () => {
  const bytes = randomBytes(5 * CHUNK + 12345);
  let r: Awaited<ReturnType<typeof regionsWithFile>>;
  beforeAll(async () => {
    r = await regionsWithFile(bytes);
  });
  afterAll(async () => {
    await r?.close();
  });

  it('reads a file whose chunks the mirror lacks through the source, then backfills the mirror store', async () => {
    const reader = readerOf(r);
    const got = await readStream(reader.stream(r.entry));
    expect(sha256Hex(got)).toBe(sha256Hex(bytes));
    expect(reader.chunks.stats.bytes['source:src']).toBe(bytes.length);
    expect(reader.chunks.stats.bytes['store:eu']).toBe(0);
    expect(reader.backfilled).toBe(r.entry.chunks.length);

    // The region's copy workers take the backfill jobs; afterwards the mirror serves every chunk.
    const replicator = new Replicator({ config: r.config, region: 'eu', logger: silentLogger, listen: false });
    await replicator.start();
    try {
      await waitFor(
        async () => (await r.mirror.mirror.missing(r.entry.chunks.map((c) => c.id))).length === 0,
        30_000,
        'the backfilled chunks in the mirror',
        50,
      );
    } finally {
      await replicator.stop();
    }
    const again = readerOf(r);
    expect(sha256Hex(await readStream(again.stream(r.entry)))).toBe(sha256Hex(bytes));
    expect(again.chunks.stats.bytes['store:eu']).toBe(bytes.length);
    expect(again.chunks.stats.bytes['source:src']).toBe(0);
  });

  it('detects a corrupt chunk in the mirror store, counts it, and still returns the right bytes', async () => {
    const victim = r.entry.chunks[2] as ChunkRef;
    const flipped = Buffer.from(await readStream((await r.source.store.get(chunkKey(victim.id))).body));
    flipped[100] = (flipped[100] ?? 0) ^ 0xff;
    await r.mirror.store.put(chunkKey(victim.id), flipped);
    const reader = readerOf(r);
    const got = await readStream(reader.stream(r.entry));
    expect(sha256Hex(got)).toBe(sha256Hex(bytes));
    expect(reader.chunks.stats.bad['store:eu']).toBe(1);
    expect(reader.chunks.stats.bytes['source:src']).toBe(victim.size);
  });

  it('serves exact bytes for ranges that cross chunk boundaries', async () => {
    const reader = readerOf(r);
    for (const [start, end] of [
      [0, 0],
      [CHUNK - 10, CHUNK + 10],
      [3 * CHUNK + 5, 5 * CHUNK + 12344],
      [bytes.length - 1, bytes.length - 1],
    ] as const) {
      const got = await readStream(reader.stream(r.entry, { start, end }));
      expect(got.equals(bytes.subarray(start, end + 1))).toBe(true);
    }
  });
});

describe('cold start', () => {
  it('16 concurrent readers of one cold file fetch each chunk once from the source', async () => {
    const bytes = randomBytes(6 * CHUNK + 999);
    const r = await regionsWithFile(bytes);
    try {
      // A mirror store with nothing in it: every chunk has to come from the source.
      const empty = new FsStore({ root: await mkdtemp(join(tmpdir(), 'ferry-empty-')) });
      const reader = readerOf(r, empty);
      const results = await Promise.all(Array.from({ length: 16 }, () => readStream(reader.stream(r.entry))));
      for (const got of results) expect(got.equals(bytes)).toBe(true);
      const counts = r.entry.chunks.map((c) => r.source.store.gets.get(chunkKey(c.id)) ?? 0);
      expect(counts).toEqual(r.entry.chunks.map(() => 1));
      expect(reader.chunks.stats.bytes['source:src']).toBe(bytes.length);
    } finally {
      await r.close();
    }
  });

  it('a store tier that lacks a chunk is skipped, not counted as bad', async () => {
    const store = new FsStore({ root: await mkdtemp(join(tmpdir(), 'ferry-tier-')) });
    const tier = storeTier('x', store);
    expect(await tier.get({ id: `sha256-${'0'.repeat(64)}` as ChunkRef['id'], size: 1 })).toBeUndefined();
  });
});
