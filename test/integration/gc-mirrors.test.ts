import { randomBytes } from 'node:crypto';
import { type ChunkId, chunkKey } from '@ferry/core';
import type { ObjectStore } from '@ferry/stores';
import { afterEach, describe, expect, it } from 'vitest';
import { createRegions, fileDigest, KiB, putBytes, type Regions, runCli, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

/*
 * Garbage collection gated on mirrors: a source with two mirrors (in-process daemons, real Redis,
 * file:// stores), one mirror stopped before it applies a delete. `ferry gc` runs as a process.
 */

let regions: Regions | undefined;
const running: Array<{ stop(): Promise<void> }> = [];

afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((r) => r.stop()));
  await regions?.close();
  regions = undefined;
});

async function inStore(store: ObjectStore, ids: readonly string[]): Promise<number> {
  let n = 0;
  for (const id of ids) {
    try {
      await store.head(chunkKey(id as ChunkId));
      n += 1;
    } catch {
      // not there
    }
  }
  return n;
}

async function gc(
  r: Regions,
  region: string,
): Promise<Record<string, unknown> & { reclaimed: { chunks: number }; heldBack: Record<string, { chunks: number; examples: string[] }> }> {
  const result = await runCli(['gc', '--region', region, '--grace', '0s', '--json', '--config', r.configPath]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').at(-1) as string);
}

describe('gc gated on mirrors', () => {
  it('keeps a deleted model in the source while a stopped mirror has not applied the delete, and names it; deletes it after catch-up, in the source and in each mirror', async () => {
    regions = await createRegions({ chunkSize: 64 * KiB, mirrors: { eu: {}, us: {} } });
    const r = regions;
    const eu = await startReplicator(r, 'eu');
    running.push(eu);
    let us = await startReplicator(r, 'us');
    running.push(us);
    const kept = randomBytes(200 * KiB);
    const { entries } = await putBytes(r, { '/keep/a.bin': kept, '/drop/model.bin': randomBytes(300 * KiB) });
    const dropped = (entries.find((e) => e.path === '/drop/model.bin')?.chunks ?? []).map((c) => c.id);
    expect(dropped).toHaveLength(5);
    await waitForConvergence(r, 'eu', 30_000);
    await waitForConvergence(r, 'us', 30_000);

    await us.stop();
    running.splice(running.indexOf(us), 1);
    await r.source.meta.delete('/drop', { recursive: true });
    await waitForConvergence(r, 'eu', 30_000);

    const held = await gc(r, 'src');
    expect(held.reclaimed.chunks).toBe(0);
    expect(Object.keys(held.heldBack)).toEqual(['us']);
    expect(held.heldBack.us?.chunks).toBe(5);
    expect(await inStore(r.source.store, dropped)).toBe(5);
    const human = await runCli(['gc', '--region', 'src', '--grace', '0s', '--dry-run', '--config', r.configPath]);
    expect(human.stdout).toMatch(/kept 5 chunks .* mirror us has not caught up/);
    // What is held back, and by which mirror, in status and in the source daemon's /metrics.
    const status = await runCli(['status', '--region', 'src', '--config', r.configPath]);
    expect(status.stdout).toMatch(/held: .*\(5 chunks\) until mirror us acknowledges the deletes/);
    const src = await startReplicator(r, 'src');
    running.push(src);
    expect(await src.metrics.registry.metrics()).toMatch(/ferry_gc_held_back_bytes\{region="src",mirror="us"\} 307200/);

    // The same in the mirror regions: eu applied the delete and collects; us still references the chunks.
    expect((await gc(r, 'eu')).reclaimed.chunks).toBe(5);
    expect(await inStore(r.mirror('eu').store, dropped)).toBe(0);
    expect((await gc(r, 'us')).reclaimed.chunks).toBe(0);
    expect(await inStore(r.mirror('us').store, dropped)).toBe(5);

    us = await startReplicator(r, 'us');
    running.push(us);
    await waitForConvergence(r, 'us', 30_000);
    const after = await gc(r, 'src');
    expect(after.reclaimed.chunks).toBe(5);
    expect(after.heldBack).toEqual({});
    expect(await inStore(r.source.store, dropped)).toBe(0);
    expect((await gc(r, 'us')).reclaimed.chunks).toBe(5);
    expect(await inStore(r.mirror('us').store, dropped)).toBe(0);

    const digest = await fileDigest(r.source, '/keep/a.bin');
    for (const region of [r.mirror('eu'), r.mirror('us')]) expect(await fileDigest(region, '/keep/a.bin')).toBe(digest);
  }, 120_000);
});
