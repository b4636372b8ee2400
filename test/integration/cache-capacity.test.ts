import { type CacheNodeClient, metricValue, rendezvousOwners, residency } from '@ferry/cache';
import type { ChunkId } from '@ferry/core';
import type { CacheMember } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CacheRegions, type ModelFile, runWarmup } from '../support/cache-cluster.js';

const MiB = 2 ** 20;

describe('a warmup larger than the nodes’ capacity', () => {
  let r: CacheRegions;
  let model: ModelFile[];
  let members: CacheMember[];
  let client: CacheNodeClient;

  beforeAll(async () => {
    r = await CacheRegions.create(inject('redisUrl'), { chunkSize: MiB });
    // 48 MiB × 2 replicas = 96 MiB of placements for 36 MiB of disk.
    ({ model, members, client } = await r.modelOnNodes({ dir: '/models/big', files: 3, fileBytes: 16 * MiB }, [
      { id: 'n1', weight: 1, capacity: '6MiB' },
      { id: 'n2', weight: 2, capacity: '12MiB' },
      { id: 'n3', weight: 3, capacity: '18MiB' },
    ]));
  });
  afterAll(async () => {
    await r?.close();
  });

  it('evicts least recently used chunks, stays under capacity and reports the true residency', async () => {
    const run = await runWarmup(r.configPath, '/models/big', ['--region', 'eu', '--concurrency', '4']);
    expect(run.result.code, run.result.stderr).toBe(0);
    const summary = run.summary;
    expect(run.lines.filter((l) => l.event === 'warning').length).toBeGreaterThan(0);
    expect(summary.failed).toBe(0);
    expect(summary.fetched).toBe(96);
    expect(summary.residency.percent).toBeLessThan(100);
    expect(summary.complete).toBe(false);
    expect(summary.ready).toBe(false);

    // The same figure from what the nodes list, chunk by chunk.
    const held = new Map<string, Set<string>>();
    for (const m of members) {
      const page = await client.inventory(m, { limit: 10_000 });
      held.set(m.id, new Set(page.items.map((i) => i.id)));
      const metrics = await client.metrics(m);
      expect(metricValue(metrics, 'ferry_cache_used_bytes')).toBeLessThanOrEqual(m.capacity);
      expect(metricValue(metrics, 'ferry_cache_evictions_total')).toBeGreaterThan(0);
    }
    // Warm order: the first chunk of every file, then the rest in file order.
    const order: ChunkId[] = [
      ...model.map((f) => f.entry.chunks[0]?.id as ChunkId),
      ...model.flatMap((f) => f.entry.chunks.slice(1).map((c) => c.id)),
    ];
    let complete = 0;
    for (const id of order) if (rendezvousOwners(members, id, 2).every((o) => held.get(o.id)?.has(id))) complete += 1;
    expect(summary.residency.held).toBe(complete);
    expect(summary.residency.percent).toBe(Math.floor((complete / order.length) * 10_000) / 100);
    expect((await residency({ members, replicas: 2, chunkIds: order, client })).held).toBe(complete);

    // Each node kept what was warmed last on it (give or take the chunks in flight together).
    for (const m of members) {
      const mine = order.filter((id) => rendezvousOwners(members, id, 2).some((o) => o.id === m.id));
      const kept = held.get(m.id) as Set<string>;
      expect(kept.size).toBeLessThan(mine.length);
      expect(kept.has(mine[0] as string), `${m.id} still holds its first chunk`).toBe(false);
      const tail = new Set<string>(mine.slice(-(kept.size + 8)));
      expect(
        [...kept].every((id) => tail.has(id)),
        `${m.id} holds only recent chunks`,
      ).toBe(true);
    }
  });

  it('with --wait it says the warmup cannot complete instead of looping', async () => {
    const run = await runWarmup(r.configPath, '/models/big', ['--region', 'eu', '--wait']);
    expect(run.result.code).toBe(1);
    expect(run.result.stderr).toMatch(/incomplete after 1 pass: residency \d/);
    expect(run.summary.rounds).toBe(1);
  });
});
