import { open, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CacheNodeClient, metricValue, regionCacheTier, rendezvousOwners, residency } from '@ferry/cache';
import { type ChunkId, type ChunkRef, chunkKey, sha256Hex, silentLogger } from '@ferry/core';
import type { CacheMember } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CacheRegions, CountingStore, type ModelFile, runWarmup, sha256Of } from '../support/cache-cluster.js';

const MiB = 2 ** 20;

function pathOf(dir: string, id: ChunkId): string {
  const hex = id.slice(id.indexOf('-') + 1);
  return join(dir, hex.slice(0, 2), hex.slice(2, 4), id);
}

async function nodeMetric(client: CacheNodeClient, node: CacheMember, name: string): Promise<number> {
  return metricValue(await client.metrics(node), name) ?? 0;
}

describe('a cache cluster of 3 node processes (weights 1:2:3) in a mirror region', () => {
  let r: CacheRegions;
  let model: ModelFile[];
  let members: CacheMember[];
  let client: CacheNodeClient;

  beforeAll(async () => {
    r = await CacheRegions.create(inject('redisUrl'), { chunkSize: MiB });
    // 256 MiB in 1 MiB chunks: 4 shards of 64 MiB.
    ({ model, members, client } = await r.modelOnNodes(
      { dir: '/models/llama', files: 4, fileBytes: 64 * MiB },
      [
        { id: 'n1', weight: 1, capacity: '1GiB' },
        { id: 'n2', weight: 2, capacity: '1GiB' },
        { id: 'n3', weight: 3, capacity: '1GiB' },
      ],
      { connectTimeoutMs: 200 },
    ));
  });
  afterAll(async () => {
    await r?.close();
  });

  function readerWith(tier: ReturnType<typeof regionCacheTier>) {
    const store = new CountingStore(r.mirror.store);
    const source = new CountingStore(r.source.store);
    const reader = new RegionReader({
      meta: r.mirror.meta,
      region: 'eu',
      store,
      source: { name: 'src', store: source },
      cache: tier.tier,
      memoryBytes: 0,
      prefetch: 8,
    });
    return { reader, store, source };
  }

  const tierOf = () =>
    regionCacheTier({ redis: r.mirror.redis, volume: r.volume, token: r.token, replicas: 2, connectTimeoutMs: 200, logger: silentLogger });

  it('warms a 256 MiB model to 100 % verified residency that matches the nodes’ inventories; reads then never touch a store', async () => {
    expect(members.map((m) => [m.id, m.weight])).toEqual([
      ['n1', 1],
      ['n2', 2],
      ['n3', 3],
    ]);
    const run = await runWarmup(r.configPath, '/models/llama', ['--region', 'eu', '--wait']);
    expect(run.result.code, run.result.stderr).toBe(0);
    const summary = run.summary;
    expect(summary.chunks).toBe(256);
    expect(summary.placements).toBe(512);
    expect(summary.failed).toBe(0);
    expect(summary.residency.percent).toBe(100);
    expect(summary.complete).toBe(true);
    expect(summary.ready).toBe(true);
    expect(run.lines.some((l) => l.event === 'progress')).toBe(true);

    // What the nodes really hold: exactly the placements, nothing else.
    const held = new Map<string, Set<string>>();
    for (const m of members) {
      const ids = new Set<string>();
      for await (const item of client.inventoryAll(m)) ids.add(item.id);
      held.set(m.id, ids);
    }
    const chunkIds = model.flatMap((f) => f.entry.chunks.map((c) => c.id));
    let placements = 0;
    for (const id of chunkIds) {
      for (const owner of rendezvousOwners(members, id, 2)) {
        expect(held.get(owner.id)?.has(id), `${id} on ${owner.id}`).toBe(true);
        placements += 1;
      }
    }
    expect([...held.values()].reduce((n, s) => n + s.size, 0)).toBe(placements);
    const verified = await residency({ members, replicas: 2, chunkIds, client });
    expect(verified.percent).toBe(100);

    const tier = tierOf();
    const { reader, store, source } = readerWith(tier);
    try {
      for (const f of model) expect((await sha256Of(reader.stream(f.entry))).sha256).toBe(f.sha256);
    } finally {
      await tier.close();
    }
    expect([store.gets, store.heads, source.gets, source.heads]).toEqual([0, 0, 0, 0]);
    expect(reader.chunks.stats.bytes.cache).toBe(256 * MiB);
  });

  it('32 concurrent cold readers of one chunk through a node cause exactly one upstream fetch', async () => {
    const { ref, bytes } = await r.sourceOnlyChunk(MiB);
    const owner = rendezvousOwners(members, ref.id, 2)[0] as CacheMember;
    const before = await nodeMetric(client, owner, 'ferry_cache_upstream_fetches_total');
    const got = await Promise.all(Array.from({ length: 32 }, () => client.get(owner, ref.id, { size: ref.size })));
    expect(got.every((b) => b?.equals(bytes))).toBe(true);
    expect((await nodeMetric(client, owner, 'ferry_cache_upstream_fetches_total')) - before).toBe(1);
    // The region store lacked it: the node read it from the source store.
    await expect(r.mirror.store.head(chunkKey(ref.id))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('detects a bit flipped in a cached chunk file, evicts it and serves the right bytes', async () => {
    const ref = model[1]?.entry.chunks[7] as ChunkRef;
    const owner = rendezvousOwners(members, ref.id, 2)[0] as CacheMember;
    const node = r.nodes.find((n) => n.id === owner.id);
    const file = pathOf(node?.dir as string, ref.id);
    const good = await readFile(file);
    const flipped = Buffer.from(good);
    flipped[12_345] = (flipped[12_345] ?? 0) ^ 0x10;
    await writeFile(file, flipped);
    const corruptBefore = await nodeMetric(client, owner, 'ferry_cache_corrupt_total');

    // Through a reader: the node catches it (the reader never sees a bad copy) and reads it through again.
    const tier = tierOf();
    const { reader, store } = readerWith(tier);
    try {
      // Buffers are compared with equals(): toEqual walks a MiB byte by byte.
      expect((await reader.fetch(ref)).equals(good)).toBe(true);
    } finally {
      await tier.close();
    }
    expect(reader.chunks.stats.bad.cache).toBe(0);
    expect(store.gets).toBe(0);
    expect((await nodeMetric(client, owner, 'ferry_cache_corrupt_total')) - corruptBefore).toBe(1);
    expect((await readFile(file)).equals(good)).toBe(true);
    const evictions = await client.metrics(owner);
    expect(evictions).toMatch(/ferry_cache_evictions_total\{reason="corrupt"\} 1/);
  });

  it('a bit that rots under a verified file (inode and mtime kept): the reader detects it, reports it, the node evicts it, the right bytes come from the next tier', async () => {
    const ref = model[2]?.entry.chunks[3] as ChunkRef;
    // Rot every owner's copy, so whichever owner answers serves a bad one.
    const owners = rendezvousOwners(members, ref.id, 2);
    let good: Buffer | undefined;
    for (const owner of owners) {
      const file = pathOf(r.nodes.find((n) => n.id === owner.id)?.dir as string, ref.id);
      good = await readFile(file);
      const before = await stat(file);
      const handle = await open(file, 'r+');
      await handle.write(Buffer.from([(good[777] ?? 0) ^ 0x01]), 0, 1, 777);
      await handle.close();
      await utimes(file, before.atime, before.mtime);
    }
    // Each owner's counts of rotten copies readers reported and it found itself, before the read
    // (earlier tests may have counted some).
    const corrupt = async (owner: CacheMember, where: string) =>
      Number(new RegExp(`ferry_cache_corrupt_total\\{where="${where}"\\} (\\d+)`).exec(await client.metrics(owner))?.[1] ?? 0);
    const before = new Map<string, { reported: number; disk: number }>();
    for (const owner of owners) before.set(owner.id, { reported: await corrupt(owner, 'reported'), disk: await corrupt(owner, 'disk') });
    const tier = tierOf();
    const { reader, store, source } = readerWith(tier);
    try {
      expect((await reader.fetch(ref)).equals(good as Buffer)).toBe(true);
      // Either the node served the file as verified at entry and the reader's own check refused
      // it (then reported it to that node, and read the next tier), or the node had no verified
      // record of the file yet and caught the rot itself when it hashed it (then evicted it and
      // read the chunk through again from the region's store, so the reader's store was not asked).
      expect(store.gets + source.gets).toBeLessThanOrEqual(1);
      expect(reader.chunks.stats.bad.cache ?? 0).toBeLessThanOrEqual(1);
      const caught = async (owner: CacheMember) => {
        const was = before.get(owner.id) ?? { reported: 0, disk: 0 };
        return (await corrupt(owner, 'reported')) > was.reported || (await corrupt(owner, 'disk')) > was.disk;
      };
      let detector: CacheMember | undefined;
      const deadline = Date.now() + 10_000;
      while (!detector) {
        for (const owner of owners) if (!detector && (await caught(owner))) detector = owner;
        if (Date.now() > deadline) throw new Error('no owner counted the rotten copy (reported by the reader or found on disk)');
        await new Promise((res) => setTimeout(res, 20));
      }
      // Either way the node that caught it keeps no rotten copy: it holds nothing, or the right bytes again.
      const held = await client.get(detector, ref.id);
      if (held !== undefined) expect(sha256Hex(held)).toBe(sha256Hex(good as Buffer));
    } finally {
      await tier.close();
    }
  });

  it('keeps reading correctly when a node is SIGKILLed mid-read', async () => {
    const tier = tierOf();
    const { reader } = readerWith(tier);
    const victim = r.nodes.find((n) => n.id === 'n3');
    try {
      const reads = model.map(async (f) => (await sha256Of(reader.stream(f.entry))).sha256);
      await new Promise((resolve) => setTimeout(resolve, 150));
      await victim?.stop('SIGKILL');
      expect(await Promise.all(reads)).toEqual(model.map((f) => f.sha256));
    } finally {
      await tier.close();
    }
    const bytes = { cache: 0, 'store:eu': 0, 'source:src': 0, ...reader.chunks.stats.bytes };
    expect(bytes.cache + bytes['store:eu'] + bytes['source:src']).toBe(256 * MiB);
    // The other owner of each of n3's chunks still has it; at most a few in flight fell to the store.
    expect(bytes.cache).toBeGreaterThan(200 * MiB);
    // And a fresh reader, with n3 still listed as a member for a few seconds, is not slowed down by it.
    const again = tierOf();
    const second = readerWith(again);
    const t0 = Date.now();
    try {
      const first = model[0] as ModelFile;
      expect((await sha256Of(second.reader.stream(first.entry))).sha256).toBe(first.sha256);
    } finally {
      await again.close();
    }
    expect(second.reader.chunks.stats.bytes.cache).toBe(64 * MiB);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
