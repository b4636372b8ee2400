import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChunkId, chunkKey } from '@ferry/core';
import type { Meta } from '@ferry/meta';
import { createStore, FaultStore } from '@ferry/stores';
import { describe, expect, it } from 'vitest';
import {
  entryOf,
  fileDigest,
  KiB,
  objectDigest,
  putBytes,
  runCli,
  sleep,
  stageBytes,
  verifyMirrorChunks,
  waitFor,
  waitForConvergence,
} from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * Acceptance 2, 4, 5, 6 and 7: how changes at the source reach a mirror (in-process daemons, real
 * Redis, file:// stores): visibility latency, renames and deletes, a trimmed log, flaky stores,
 * and a corrupt chunk at the source.
 */

const scope = useRegions();

async function listPaths(meta: Meta, dir: string): Promise<string[]> {
  return (await meta.list(dir, { recursive: true })).items.map((i) => (i.kind === 'file' ? i.entry.path : `${i.path}/`));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

describe('replication of changes', () => {
  it('shows new files in the mirror within a second of their commit (p99 over 200 commits)', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    await scope.replicator(r);
    await putBytes(r, { '/vis/warmup': randomBytes(100) });
    await waitForConvergence(r, 'eu', 20_000);

    const mirror = r.mirror('eu');
    const pending = new Map<string, number>();
    const latencies: number[] = [];
    let committing = true;
    const poller = (async () => {
      while (committing || pending.size > 0) {
        const paths = [...pending.keys()];
        if (paths.length > 0) {
          const found = await mirror.redis.hmget(mirror.meta.keys.entries, ...paths);
          const now = Date.now();
          found.forEach((json, i) => {
            const path = paths[i] as string;
            if (json !== null) {
              latencies.push(now - (pending.get(path) as number));
              pending.delete(path);
            }
          });
        }
        await sleep(2);
      }
    })();
    for (let i = 0; i < 200; i++) {
      const path = `/vis/file-${i}`;
      const entries = await stageBytes(r, { [path]: randomBytes(1000 + i) });
      pending.set(path, Date.now());
      await r.source.meta.commit(entries);
      await sleep(10 + (i % 3) * 5);
    }
    committing = false;
    await Promise.race([poller, sleep(10_000).then(() => Promise.reject(new Error(`never visible: ${[...pending.keys()].join(', ')}`)))]);
    const sorted = latencies.sort((a, b) => a - b);
    const p99 = percentile(sorted, 99);
    expect(sorted).toHaveLength(200);
    expect(p99).toBeLessThan(1000);
    await waitForConvergence(r, 'eu', 20_000);
  });

  it('follows renames and deletes of files and directories', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const files: Record<string, Buffer> = {};
    for (const path of [
      '/m/a/one.bin',
      '/m/a/sub/two.bin',
      '/m/b/three.bin',
      '/m/keep.bin',
      '/m/dir/x/y.bin',
      '/m/dir/z.bin',
      '/m/gone.bin',
    ])
      files[path] = randomBytes(100 * KiB + path.length);
    await putBytes(r, files);
    await scope.replicator(r);
    await waitForConvergence(r, 'eu', 20_000);
    const mirror = r.mirror('eu');
    expect(await listPaths(mirror.meta, '/m')).toEqual(Object.keys(files).sort());

    const src = r.source.meta;
    await src.rename('/m/keep.bin', '/m/kept.bin'); // a file
    await src.rename('/m/a', '/m/c'); // a directory
    await src.delete('/m/b/three.bin'); // a file
    await src.delete('/m/dir', { recursive: true }); // a directory
    await src.delete('/m/gone.bin');
    const replaced = randomBytes(70 * KiB);
    await putBytes(r, { '/m/gone.bin': replaced }); // deleted, then the same path again with new bytes
    await waitForConvergence(r, 'eu', 20_000);

    expect(await listPaths(mirror.meta, '/m')).toEqual(['/m/c/one.bin', '/m/c/sub/two.bin', '/m/gone.bin', '/m/kept.bin']);
    expect((await mirror.meta.list('/m')).items.map((i) => `${i.kind} ${i.kind === 'dir' ? i.path : i.entry.path}`)).toEqual([
      'dir /m/c',
      'file /m/gone.bin',
      'file /m/kept.bin',
    ]);
    for (const gone of ['/m/keep.bin', '/m/a/one.bin', '/m/b/three.bin', '/m/dir/z.bin'])
      expect(await mirror.meta.tryStat(gone)).toBeUndefined();
    await expect(mirror.meta.list('/m/dir')).rejects.toThrow('no such file or directory');
    await expect(mirror.meta.list('/m/a')).rejects.toThrow('no such file or directory');
    expect(await fileDigest(mirror, '/m/c/sub/two.bin')).toBe(await fileDigest(r.source, '/m/c/sub/two.bin'));
    expect((await entryOf(mirror, '/m/gone.bin'))?.size).toBe(replaced.length);
    expect(await fileDigest(mirror, '/m/gone.bin')).toBe(await fileDigest(r.source, '/m/gone.bin'));
    await verifyMirrorChunks(r, 'eu');
  });

  it('does a full resync, deletes included, when the log was trimmed past its cursor', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const first: Record<string, Buffer> = {};
    for (let i = 0; i < 30; i++) first[`/t/d${i % 3}/f${i}`] = randomBytes(20 * KiB + i);
    await putBytes(r, first);
    const before = await scope.replicator(r);
    await waitForConvergence(r, 'eu', 20_000);
    await before.stop();

    // While the daemon is down: new files, a file and a directory deleted, a rename, then the
    // log is trimmed to its last record.
    for (let i = 0; i < 5; i++) await putBytes(r, { [`/t/new/n${i}`]: randomBytes(30 * KiB + i) });
    await r.source.meta.delete('/t/d0/f0');
    await r.source.meta.delete('/t/d1', { recursive: true });
    await r.source.meta.rename('/t/d2', '/t/moved');
    await putBytes(r, { '/t/last': randomBytes(1000) });
    const removed = await r.source.meta.log.trimLog(1, { exact: true });
    expect(removed).toBeGreaterThan(1);
    const cursorBefore = await r.mirror('eu').mirror.cursor();
    expect((await r.source.meta.log.logBounds()).first).not.toBe(cursorBefore);

    const after = await scope.replicator(r);
    await waitForConvergence(r, 'eu', 30_000);
    expect((await after.metrics.resyncs.get()).values[0]?.value).toBe(1);
    const status = await after.status();
    expect(status.resync).toMatchObject({ state: 'done', count: '2' });
    expect(status.resync?.reason).toMatch(/trimmed past the cursor/);
    expect(Number(status.resync?.removed)).toBe(21); // f0, the 10 files of d1, and the 10 of d2 (now under /t/moved)
    expect(await r.mirror('eu').meta.tryStat('/t/d1/f1')).toBeUndefined();
    expect(await r.mirror('eu').meta.tryStat('/t/moved/f2')).toBeDefined();
    const metrics = await after.metrics.registry.metrics();
    expect(metrics).toMatch(/ferry_replicator_resyncs_total\{region="eu"\} 1/);
    // The log is read on from the snapshot: later changes arrive as records again.
    await putBytes(r, { '/t/after-resync': randomBytes(1000) });
    await waitForConvergence(r, 'eu', 20_000);
    expect((await after.metrics.recordsApplied.get()).values[0]?.value).toBe(1);
    await verifyMirrorChunks(r, 'eu');
  });

  it('converges through 5 % transient failures of both stores', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const config = r.config.regions;
    const source = new FaultStore({ inner: createStore(config.src?.store as string), failRate: 0.05, truncateRate: 0.02, seed: 7 });
    const target = new FaultStore({ inner: createStore(config.eu?.store as string), failRate: 0.05, seed: 11 });
    const batch: Record<string, Buffer> = {};
    for (let i = 0; i < 20; i++) batch[`/f/batch/${i}`] = randomBytes(64 * KiB * (1 + (i % 5)) + i);
    await putBytes(r, batch);
    const replicator = await scope.replicator(r, { stores: { source, target } });
    for (let i = 0; i < 20; i++) {
      await putBytes(r, { [`/f/live/${i}`]: randomBytes(64 * KiB * (1 + (i % 4)) + 7 * i) });
      if (i % 5 === 4) await r.source.meta.delete(`/f/batch/${i}`);
    }
    await waitForConvergence(r, 'eu', 60_000);
    const copies = await verifyMirrorChunks(r, 'eu');
    expect(copies).toBeGreaterThan(100);
    expect(source.stats.failed).toBeGreaterThan(0);
    expect(target.stats.failed).toBeGreaterThan(0);
    expect((await replicator.metrics.copyFailures.get()).values[0]?.value).toBeGreaterThan(0);
    expect((await replicator.status()).failures).toEqual([]);
  });

  it('keeps no failure record for a chunk that was copied or deleted since its copy failed', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: { copy: { attempts: 1 } } } });
    const r = regions;
    const target = new FaultStore({ inner: createStore(r.config.regions.eu?.store as string), failWhen: (op) => op === 'put' });
    const replicator = await scope.replicator(r, { stores: { target } });
    const { entries } = await putBytes(r, { '/g/doomed.bin': randomBytes(130 * KiB), '/g/kept.bin': randomBytes(10 * KiB) });
    const doomed = entries[0]?.chunks.map((c) => c.id) ?? [];
    const kept = entries[1]?.chunks[0]?.id as ChunkId;
    await waitFor(async () => ((await replicator.status()).failures ?? []).length === 4, 30_000, 'every copy to fail once');
    const mirror = r.mirror('eu').mirror;

    // The file is deleted at the source: its chunks' failure records go with the record that
    // dropped their last reference, not at the next reconcile pass.
    await r.source.meta.delete('/g/doomed.bin');
    await waitFor(async () => (await r.mirror('eu').meta.tryStat('/g/doomed.bin')) === undefined, 10_000, 'the delete to reach the mirror');
    expect(((await replicator.status()).failures ?? []).map((f) => f.chunk)).toEqual([kept]);
    // A job that was still running for a deleted chunk fails after the delete: nothing is kept.
    const late = { chunk: doomed[0] as ChunkId, error: 'late', code: 'TRANSIENT', attempts: 1, at: Date.now() };
    expect(await mirror.recordCopyFailure(late)).toBe(false);
    // A second job for a chunk another one already copied fails after it: nothing is kept either.
    expect(await mirror.markPresent(kept)).toBe(true);
    expect(await mirror.recordCopyFailure({ ...late, chunk: kept })).toBe(false);
    expect((await replicator.status()).failures).toEqual([]);
    expect(await mirror.counts()).toMatchObject({ failing: 0 });
  });

  it('never stores a corrupt source chunk, reports it by name, and converges after retry-failed', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: { copy: { attempts: 2 } } } });
    const r = regions;
    const { entries } = await putBytes(r, {
      '/c/a.bin': randomBytes(200 * KiB),
      '/c/b.bin': randomBytes(200 * KiB),
    });
    const victim = entries[1]?.chunks[1]?.id as ChunkId;
    const file = join(r.source.root as string, ...chunkKey(victim).split('/'));
    const { body } = await r.source.store.get(chunkKey(victim));
    const good: Buffer[] = [];
    for await (const part of body) good.push(part as Buffer);
    const original = Buffer.concat(good);
    await writeFile(file, randomBytes(original.length));

    const replicator = await scope.replicator(r);
    await waitFor(
      async () => {
        const s = await replicator.status();
        return (s.failures ?? []).length > 0 && s.chunks?.missing === 1;
      },
      30_000,
      'the copy of the corrupt chunk to fail, and only that one to be missing',
    );
    const status = await replicator.status();
    // A corrupt source chunk is a permanent failure: it fails at its first attempt, not after all of them.
    expect(status.failures).toEqual([
      { chunk: victim, attempts: 1, code: 'CORRUPT', at: expect.any(Number), error: expect.stringContaining(victim) },
    ]);
    expect(status.chunks).toMatchObject({ failing: 1 });
    expect(status.failures?.[0]?.error).toMatch(/sha256 mismatch/);
    expect(status.chunks).toMatchObject({ missing: 1 });
    expect(await objectDigest(r.mirror('eu').store, chunkKey(victim))).toBeUndefined();
    expect(await r.mirror('eu').mirror.isPresent(victim)).toBe(false);
    // Each refusal counts: the reconciler may have queued the chunk again since its first failure.
    expect((await replicator.metrics.corruptChunks.get()).values[0]?.value).toBeGreaterThanOrEqual(1);

    const cli = await runCli(['status', '--region', 'eu', '--json', '--config', r.configPath]);
    expect(cli.code, cli.stderr).toBe(0);
    const shown = JSON.parse(cli.stdout.trim().split('\n').at(-1) as string);
    expect(shown).toMatchObject({ region: 'eu', role: 'mirror', chunks: { missing: 1 } });
    expect(shown.failures).toEqual([
      expect.objectContaining({ chunk: victim, attempts: 1, error: expect.stringContaining('sha256 mismatch') }),
    ]);

    // Put the right bytes back and retry: the chunk is copied, verified, and the mirror is complete.
    await writeFile(file, original);
    const retry = await runCli(['replicator', 'retry-failed', '--region', 'eu', '--json', '--config', r.configPath]);
    expect(retry.code, retry.stderr).toBe(0);
    expect(JSON.parse(retry.stdout.trim())).toMatchObject({ retried: 1 });
    await waitForConvergence(r, 'eu', 20_000);
    expect((await replicator.status()).failures).toEqual([]);
    expect(await objectDigest(r.mirror('eu').store, chunkKey(victim))).toBe(victim.slice('sha256-'.length));
    await verifyMirrorChunks(r, 'eu');
    expect(await fileDigest(r.mirror('eu'), '/c/b.bin')).toBe(entries[1]?.sha256);
  });
});
