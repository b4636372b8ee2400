import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunksIn, fileDigest, KiB, putBytes, type Regions, runCli, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * Garbage collection gated on mirrors: a source with two mirrors (in-process daemons, real Redis,
 * file:// stores), one mirror stopped before it applies a delete. `ferry gc` runs as a process.
 */

const scope = useRegions();

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
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: {}, us: {} } });
    const r = regions;
    await scope.replicator(r, {}, 'eu');
    let us = await scope.replicator(r, {}, 'us');
    const kept = randomBytes(200 * KiB);
    const { entries } = await putBytes(r, { '/keep/a.bin': kept, '/drop/model.bin': randomBytes(300 * KiB) });
    const dropped = (entries.find((e) => e.path === '/drop/model.bin')?.chunks ?? []).map((c) => c.id);
    expect(dropped).toHaveLength(5);
    await waitForConvergence(r, 'eu', 30_000);
    await waitForConvergence(r, 'us', 30_000);

    await us.stop();
    await r.source.meta.delete('/drop', { recursive: true });
    await waitForConvergence(r, 'eu', 30_000);

    const held = await gc(r, 'src');
    expect(held.reclaimed.chunks).toBe(0);
    expect(Object.keys(held.heldBack)).toEqual(['us']);
    expect(held.heldBack.us?.chunks).toBe(5);
    expect(await chunksIn(r.source.store, dropped)).toBe(5);
    const human = await runCli(['gc', '--region', 'src', '--grace', '0s', '--dry-run', '--config', r.configPath]);
    expect(human.stdout).toMatch(/kept 5 chunks .* mirror us has not caught up/);
    // What is held back, and by which mirror, in status and in the source daemon's /metrics.
    const status = await runCli(['status', '--region', 'src', '--config', r.configPath]);
    expect(status.stdout).toMatch(/held: .*\(5 chunks\) until mirror us acknowledges the deletes/);
    // The stopped mirror: nothing holds its lease, and status says since when.
    const stopped = await runCli(['status', '--region', 'us', '--config', r.configPath]);
    expect(stopped.stdout).toMatch(/leader: +NO replicator holds the lease since \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+ s ago\)/);
    expect(stopped.stdout).toMatch(/lag: +1 records/);
    const src = await scope.replicator(r, {}, 'src');
    expect(await src.metrics.registry.metrics()).toMatch(/ferry_gc_held_back_bytes\{region="src",mirror="us"\} 307200/);

    // The same in the mirror regions: eu applied the delete and collects; us still references the chunks.
    expect((await gc(r, 'eu')).reclaimed.chunks).toBe(5);
    // After a real pass, status shows what is reclaimable now (nothing: the pass deleted it), and what it deleted as a total.
    const euStatus = await runCli(['status', '--region', 'eu', '--json', '--config', r.configPath]);
    const euGc = JSON.parse(euStatus.stdout.trim()).gc;
    expect(euGc.reclaimable).toEqual({ chunks: 0, bytes: 0 });
    expect(euGc.totals.reclaimed.chunks).toBe(5);
    // Every deleted chunk's size counts (concurrent deletes once lost each other's sizes).
    expect(euGc.totals.reclaimed.bytes).toBe(300 * KiB);
    const afterHuman = await runCli(['status', '--region', 'eu', '--config', r.configPath]);
    expect(afterHuman.stdout).toMatch(/gc: +last pass .*; reclaimable now 0 B \(0 chunks\)/);
    expect(afterHuman.stdout).toMatch(/totals: .*gc reclaimed 300.0 KiB \(5 objects\)/);
    expect(await chunksIn(r.mirror('eu').store, dropped)).toBe(0);
    expect((await gc(r, 'us')).reclaimed.chunks).toBe(0);
    expect(await chunksIn(r.mirror('us').store, dropped)).toBe(5);

    us = await scope.replicator(r, {}, 'us');
    await waitForConvergence(r, 'us', 30_000);
    const after = await gc(r, 'src');
    expect(after.reclaimed.chunks).toBe(5);
    expect(after.heldBack).toEqual({});
    expect(await chunksIn(r.source.store, dropped)).toBe(0);
    expect((await gc(r, 'us')).reclaimed.chunks).toBe(5);
    expect(await chunksIn(r.mirror('us').store, dropped)).toBe(0);

    const digest = await fileDigest(r.source, '/keep/a.bin');
    for (const region of [r.mirror('eu'), r.mirror('us')]) expect(await fileDigest(region, '/keep/a.bin')).toBe(digest);
  }, 120_000);
});
