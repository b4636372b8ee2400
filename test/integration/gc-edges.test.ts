import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChunkClaimedError, type ChunkId, chunkKey, formatBytes, silentLogger } from '@ferry/core';
import { collectGarbage } from '@ferry/region';
import { FaultStore } from '@ferry/stores';
import { planPut, putFiles } from '@ferry/writer';
import { describe, expect, it } from 'vitest';
import { chunksIn, KiB, putBytes, type Regions, runCli, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';
import { waitFor } from '../support/wait.mjs';

/*
 * Garbage collection at the edges of time and state: a mirror whose Redis lost its state, a
 * mirror that applies a delete late, a put slower than the grace, the configured grace, and the
 * byte counts. Real Redis, file:// stores, in-process replicators; `ferry gc` as a process.
 */

const scope = useRegions();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every file under a directory, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return names.filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

/** A source and a mirror eu that has copied one file of `size` bytes, its replicator stopped. */
async function mirroredThenStopped(size: number): Promise<Regions> {
  const r = await scope.regions({ chunkSize: 64 * KiB });
  const eu = await scope.replicator(r, {}, 'eu');
  await putBytes(r, { '/m/a.bin': randomBytes(size) });
  await waitForConvergence(r, 'eu', 30_000);
  await eu.stop();
  return r;
}

const TWO_DAYS_AGO = new Date(Date.now() - 2 * 86_400_000);

describe('gc at the edges', () => {
  it('a mirror whose Redis was flushed collects nothing and says why (exit 3, status, metric); after its resync it deletes nothing and copies nothing again', async () => {
    const r = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: { gc: { every: '2s', grace: '24h' } } } });
    let eu = await scope.replicator(r, {}, 'eu');
    await putBytes(r, { '/m/a.bin': randomBytes(300 * KiB), '/m/b.bin': randomBytes(200 * KiB) });
    await waitForConvergence(r, 'eu', 30_000);
    await eu.stop();
    const chunksDir = join(r.mirror('eu').root as string, 'chunks');
    const objects = await filesUnder(chunksDir);
    expect(objects.length).toBe(9);
    for (const file of objects) await utimes(file, TWO_DAYS_AGO, TWO_DAYS_AGO);
    await r.mirror('eu').redis.flushdb();

    const refused = await runCli(['gc', '--region', 'eu', '--grace', '24h', '--config', r.configPath]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^ferry: gc eu: refused: its metadata has no cursor .*; nothing was deleted\n$/);
    expect(await filesUnder(chunksDir)).toHaveLength(9);
    const status = await runCli(['status', '--region', 'eu', '--config', r.configPath]);
    expect(status.stdout).toMatch(/gc: {7}REFUSED since .*: its metadata has no cursor/);

    // The daemon, with its own GC every 2 s: resyncs, its passes refuse until then, then run.
    eu = await scope.replicator(r, {}, 'eu');
    expect(await eu.metrics.registry.metrics()).toMatch(/ferry_gc_refused\{region="eu",reason="no-cursor"\} 1/);
    await waitForConvergence(r, 'eu', 30_000);
    await waitFor(
      async () => /ferry_gc_refused\{region="eu",reason=""\} 0/.test(await eu.metrics.registry.metrics()),
      30_000,
      'a GC pass that runs',
    );
    const after = await filesUnder(chunksDir);
    expect(after).toHaveLength(9);
    // Not copied again: every object is the one aged before the flush.
    for (const file of after) expect((await stat(file)).mtimeMs).toBeLessThan(Date.now() - 86_400_000);
  }, 120_000);

  it('a mirror refuses during a resync and with a fencing token its Redis no longer holds; the source is not gated', async () => {
    const r = await mirroredThenStopped(100 * KiB);
    const mirror = r.mirror('eu');
    const fence = (await mirror.redis.get(mirror.meta.keys.fence)) as string;
    expect(fence).toBeTruthy();
    await expect(collectGarbage(mirror, { graceMs: 0, token: `${Number(fence) - 1}` })).rejects.toMatchObject({
      code: 'GC_REFUSED',
      reason: 'fenced',
    });
    expect((await collectGarbage(mirror, { graceMs: 0, token: fence })).reclaimed.chunks).toBe(0);
    await mirror.redis.hset(mirror.meta.keys.resyncInfo, 'state', 'running');
    await expect(collectGarbage(mirror, { graceMs: 0 })).rejects.toMatchObject({ code: 'GC_REFUSED', reason: 'resync' });
    await mirror.redis.hset(mirror.meta.keys.resyncInfo, 'state', 'done');
    expect((await collectGarbage(r.source, { graceMs: 0, token: 'anything' })).reclaimed.chunks).toBe(0);
  }, 60_000);

  it('a mirror orphan sweep keeps an object the source references though its own Redis does not know it', async () => {
    const r = await mirroredThenStopped(10 * KiB);
    // An object the source references, in eu's store, that eu's Redis has no record of (a copy
    // of a record not applied yet).
    const { entries } = await putBytes(r, { '/m/new.bin': randomBytes(20 * KiB) });
    const id = entries[0]?.chunks[0]?.id as ChunkId;
    const mirror = r.mirror('eu');
    const body = await r.source.store.get(chunkKey(id));
    const bytes = Buffer.concat(await body.body.toArray());
    await mirror.store.put(chunkKey(id), bytes);
    await utimes(join(mirror.root as string, chunkKey(id)), TWO_DAYS_AGO, TWO_DAYS_AGO);
    // Past a grace since eu's first sync (a resync): orphans are swept from then on.
    await sleep(1_100);
    const pass = await collectGarbage(mirror, { graceMs: 1_000 });
    expect(pass.orphans.objects).toBe(0);
    expect(await chunksIn(mirror.store, [id])).toBe(1);
    // Once the source no longer references it, it is an orphan like any other.
    await r.source.meta.delete('/m/new.bin');
    expect((await collectGarbage(mirror, { graceMs: 1_000 })).orphans.objects).toBe(1);
  }, 60_000);

  it('a mirror that applies a delete late keeps the chunks a full grace from then, not from the source’s delete', async () => {
    const r = await scope.regions({ chunkSize: 64 * KiB });
    let eu = await scope.replicator(r, {}, 'eu');
    const { entries } = await putBytes(r, { '/m/old.bin': randomBytes(256 * KiB) });
    const chunks = (entries[0]?.chunks ?? []).map((c) => c.id);
    expect(chunks).toHaveLength(4);
    await waitForConvergence(r, 'eu', 30_000);
    await eu.stop();
    await r.source.meta.delete('/m/old.bin');
    await sleep(4_000);
    eu = await scope.replicator(r, {}, 'eu');
    await waitForConvergence(r, 'eu', 30_000);
    const mirror = r.mirror('eu');
    expect((await collectGarbage(mirror, { graceMs: 3_000 })).reclaimed.chunks).toBe(0);
    expect(await chunksIn(mirror.store, chunks)).toBe(4);
    // The source dropped them 4 s ago and eu has acknowledged: it collects its own copies.
    expect((await collectGarbage(r.source, { graceMs: 3_000 })).reclaimed.chunks).toBe(4);
    await sleep(3_100);
    expect((await collectGarbage(mirror, { graceMs: 3_000 })).reclaimed.chunks).toBe(4);
    expect(await chunksIn(mirror.store, chunks)).toBe(0);
  }, 60_000);

  it('a put slower than the grace commits at its first try while GC runs every second: it uploads each chunk once', async () => {
    const r = await scope.regions({ chunkSize: 64 * KiB });
    await mkdir(r.source.root as string, { recursive: true });
    const slow = new FaultStore({ inner: r.source.store, latencyMs: 600 });
    const local = join(r.dir, 'slow.bin');
    await writeFile(local, randomBytes(640 * KiB));
    const { files } = await planPut(local, '/slow/model.bin');
    let collecting = true;
    let passes = 0;
    const collector = (async () => {
      while (collecting) {
        await collectGarbage(r.source, { graceMs: 3_000 });
        passes += 1;
        await sleep(1_000);
      }
    })();
    const started = Date.now();
    const summary = await putFiles({
      store: slow,
      meta: r.source.meta,
      files,
      chunkSize: 64 * KiB,
      concurrency: 2,
      holdTtlMs: 3_000,
      logger: silentLogger,
    }).finally(() => {
      collecting = false;
    });
    await collector;
    expect(Date.now() - started).toBeGreaterThan(5_000);
    expect(passes).toBeGreaterThan(3);
    expect(summary.chunksUploaded).toBe(10);
    expect(slow.stats.calls.put).toBe(10);
    const entry = await r.source.meta.stat('/slow/model.bin');
    expect(
      await chunksIn(
        r.source.store,
        entry.chunks.map((c) => c.id),
      ),
    ).toBe(10);
  }, 120_000);

  it('a commit whose look at the store is older than gc-deleted keeps is refused, unless its chunks were held all along; a late renewal lapses', async () => {
    const r = await scope.regions({ chunkSize: 64 * KiB });
    const { entries } = await putBytes(r, { '/h/a.bin': randomBytes(10 * KiB) });
    const entry = entries[0] as (typeof entries)[number];
    const next = { ...entry, path: '/h/b.bin', mtime: Date.now() };
    const longAgo = (await r.source.meta.serverTime()) - 25 * 3_600_000;
    await expect(r.source.meta.commit([next], { since: longAgo })).rejects.toBeInstanceOf(ChunkClaimedError);
    const held = await r.source.meta.refs.hold(
      entry.chunks.map((c) => c.id),
      60_000,
    );
    expect(held.lapsed).toBe(false);
    if (held.lapsed) return;
    expect(held.claimed).toEqual([]);
    await r.source.meta.commit([next], { since: longAgo, held: held.expiry });
    expect((await r.source.meta.stat('/h/b.bin')).sha256).toBe(entry.sha256);
    // A renewal after the expiry it was given is refused: the holds may have lapsed.
    const short = await r.source.meta.refs.hold(['sha256-'.padEnd(71, 'a')], 1_000);
    expect(short.lapsed).toBe(false);
    if (short.lapsed) return;
    await sleep(1_100);
    expect(await r.source.meta.refs.hold(['sha256-'.padEnd(71, 'a')], 1_000, short.expiry)).toEqual({ lapsed: true });
  }, 60_000);

  it('ferry gc without --grace uses the region’s gc.grace, and reports the bytes it deleted exactly', async () => {
    // Holds of 1 s: a put's chunks are kept from GC that long after it ends.
    const r = await scope.regions({
      chunkSize: 64 * KiB,
      source: { gc: { every: '1h', grace: '2s' } },
      mirrors: {},
      writer: { holdTtl: '1s' },
    });
    const size = 5_500_000;
    const { entries } = await putBytes(r, { '/big/model.bin': randomBytes(size) });
    const chunks = (entries[0]?.chunks ?? []).map((c) => c.id);
    expect(chunks.length).toBe(Math.ceil(size / (64 * KiB)));
    await r.source.meta.delete('/big/model.bin');
    const early = await runCli(['gc', '--region', 'src', '--dry-run', '--json', '--config', r.configPath]);
    expect(early.code, early.stderr).toBe(0);
    expect(JSON.parse(early.stdout.trim().split('\n').at(-1) as string).reclaimable.chunks).toBe(0);
    await sleep(2_200);
    const dry = await runCli(['gc', '--region', 'src', '--dry-run', '--json', '--config', r.configPath]);
    expect(JSON.parse(dry.stdout.trim().split('\n').at(-1) as string).reclaimable).toEqual({ chunks: chunks.length, bytes: size });
    const pass = await runCli(['gc', '--region', 'src', '--config', r.configPath]);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.stdout).toContain(`deleted ${chunks.length} chunks (${formatBytes(size)})`);
    expect(Number(await r.source.redis.hget(r.source.meta.keys.gcInfo, 'reclaimed-bytes'))).toBe(size);
    expect(await chunksIn(r.source.store, chunks)).toBe(0);
  }, 60_000);
});
