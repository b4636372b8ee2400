import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore, FaultStore } from '@ferry/stores';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Daemon,
  differences,
  KiB,
  putBytes,
  type Regions,
  regionState,
  sleep,
  stageBytes,
  startDaemon,
  verifyMirrorChunks,
  waitFor,
  waitForConvergence,
} from '../support/regions.js';
import { useS3Env } from '../support/s3.js';
import { useRegions } from '../support/scope.js';
import { type RunningS3rver, startS3rver } from '../support/servers/s3rver.js';

/*
 * Recovery without a person: a source store outage longer than the copy retry budget, a resync
 * that loses its seen set, a mirror whose Redis lost everything, and a stop while Redis is gone.
 */

const scope = useRegions();

/** Commit `n` files under `dir` that all share one small chunk (metadata-heavy volumes, cheap to make). */
async function commitMany(r: Regions, dir: string, n: number): Promise<void> {
  const [template] = await stageBytes(r, { [`${dir}-template`]: randomBytes(512) });
  if (!template) throw new Error('no template entry');
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.push({ ...template, path: `${dir}/f${String(j).padStart(6, '0')}` });
    await r.source.meta.commit(batch);
  }
}

describe('a mirror recovers by itself', () => {
  it('from a source store outage longer than the copy retry budget: failures stay visible, then it converges within two reconcile periods', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-outage-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    scope.defer(useS3Env());
    let s3: RunningS3rver = await startS3rver({ directory: dir, buckets: ['src'] });
    scope.defer(() => s3.stop());
    const store = `s3://src/outage?endpoint=${encodeURIComponent(s3.endpoint)}&forcePathStyle=1&checksums=when_required&region=us-east-1`;
    const reconcileMs = 4_000;
    // Two attempts, 500 ms apart: the whole retry budget is about half a second.
    const regions = await scope.regions({
      chunkSize: 64 * KiB,
      source: { store },
      mirrors: { eu: { copy: { attempts: 2, reconcileEvery: reconcileMs, concurrency: 4 } } },
    });
    const r = regions;
    await putBytes(r, { '/model/a.safetensors': randomBytes(1024 * KiB), '/model/b.safetensors': randomBytes(640 * KiB + 7) });
    const chunks = 16 + 11;
    await s3.stop();

    const replicator = await scope.replicator(r);
    // Every copy fails for good while the store is down (each job gave up: nothing waits or retries)
    // and each chunk stays visible with its error, in status and in /metrics.
    await waitFor(
      async () => {
        const s = await replicator.status();
        const q = s.queue ?? {};
        return s.chunks?.failing === chunks && (q.waiting ?? 0) + (q.prioritized ?? 0) + (q.active ?? 0) + (q.delayed ?? 0) === 0;
      },
      30_000,
      'every copy to fail for good',
      50,
    );
    const status = await replicator.status();
    expect(status.chunks).toMatchObject({ missing: chunks, failing: chunks });
    expect(status.failures?.[0]?.error).toMatch(/127\.0\.0\.1|reach|connect|refused/i);
    const metrics = await replicator.metrics.registry.metrics();
    expect(metrics).toContain(`ferry_replicator_chunks_failing{region="eu"} ${chunks}`);
    expect(metrics).toMatch(
      /ferry_replicator_copy_failure\{region="eu",chunk="sha256-[0-9a-f]{64}",code="UNAVAILABLE",error="[^"]+"\} [12]/,
    );
    await sleep(1_000);

    s3 = await startS3rver({ directory: dir, buckets: ['src'], port: s3.port });
    // The next pass (at most one period away) queues every chunk again; two periods bound it.
    await waitForConvergence(r, 'eu', 2 * reconcileMs + 2_000);
    await verifyMirrorChunks(r, 'eu');
    const after = await replicator.status();
    expect(after.failures).toEqual([]);
    expect(after.chunks).toMatchObject({ missing: 0, failing: 0 });
    expect((await replicator.metrics.reconcileQueued.get()).values[0]?.value).toBeGreaterThanOrEqual(chunks);
  });

  it('from a resync whose seen set is lost between pages: nothing is pruned, the resync starts over and ends exactly at the source', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const m = r.mirror('eu');
    await commitMany(r, '/many', 20_000);
    const first = await scope.replicator(r);
    await waitForConvergence(r, 'eu', 60_000);
    await first.stop();

    // While no replicator runs: 100 files go, 50 arrive, and the log is trimmed past the cursor.
    for (let i = 0; i < 100; i++) await r.source.meta.delete(`/many/f${String(i * 7).padStart(6, '0')}`);
    await commitMany(r, '/more', 50);
    await r.source.meta.log.trimLog(1, { exact: true });
    const live = (await r.source.redis.hlen(r.source.meta.keys.entries)) as number;

    let lowest = Number.POSITIVE_INFINITY;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        lowest = Math.min(lowest, await m.redis.hlen(m.meta.keys.entries));
        await sleep(2);
      }
    })();
    const replicator = await scope.replicator(r, { watcher: { resyncPageSize: 100 } });
    // Between two pages of the resync, its seen set is lost (an eviction, a person, a bug).
    let lost = '';
    await waitFor(
      async () => {
        const [state, pages, seen] = await m.redis.hmget(m.mirror.keys.resyncInfo, 'state', 'pages', 'seen');
        if (state !== 'running' || Number(pages) < 5 || !seen) return false;
        lost = seen;
        return (await m.redis.del(seen)) === 1;
      },
      30_000,
      'a resync with a few pages applied',
      1,
    );
    try {
      await waitForConvergence(r, 'eu', 60_000);
    } finally {
      sampling = false;
      await sampler;
    }
    // Nothing the source has was removed at any moment: the mirror never held fewer entries than the source.
    expect(lowest).toBeGreaterThanOrEqual(live);
    expect(await differences(r, 'eu')).toEqual([]);
    expect(Object.keys((await regionState(m)).entries)).toHaveLength(live);
    const resync = await m.mirror.resyncState();
    expect(resync).toMatchObject({ state: 'done', removed: 100 });
    expect(resync?.reason).toMatch(/did not finish \(the seen set holds \d+ of \d+ page markers\)/);
    expect((await replicator.metrics.resyncs.get()).values[0]?.value).toBe(2);
    expect(await m.redis.exists(lost)).toBe(0);
  });

  it("from losing the mirror's Redis after a complete mirror: it resyncs and copies 0 bytes (counted at the store)", async () => {
    const redis = await scope.redis();
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrorRedis: redis.url, replicator: { leaseTtl: '2s' } });
    const r = regions;
    await putBytes(r, { '/m/a.bin': randomBytes(1024 * KiB), '/m/b.bin': randomBytes(300 * KiB), '/m/c.bin': randomBytes(10) });
    const target = new FaultStore({ inner: createStore(r.config.regions.eu?.store as string) });
    scope.defer(() => target.close());
    const replicator = await scope.replicator(r, { stores: { target }, watcher: { leaseTtlMs: 2_000 } });
    await waitForConvergence(r, 'eu', 30_000);
    const chunks = 16 + 5 + 1;
    expect(target.stats.calls.put).toBe(chunks);
    const bytes = (await replicator.metrics.bytesCopied.get()).values[0]?.value;

    await redis.cli('flushall');
    await waitForConvergence(r, 'eu', 30_000);
    await verifyMirrorChunks(r, 'eu');
    // Every chunk was found in the store by a HEAD; not one was put again.
    expect(target.stats.calls.put).toBe(chunks);
    expect((await replicator.metrics.bytesCopied.get()).values[0]?.value).toBe(bytes);
    expect((await replicator.metrics.chunksFound.get()).values[0]?.value).toBe(chunks);
    expect((await replicator.metrics.fencedWrites.get()).values[0]?.value).toBeGreaterThanOrEqual(1);
    expect((await replicator.metrics.resyncs.get()).values[0]?.value).toBe(2);
  });
});

describe('a bounded stop', () => {
  let daemon: Daemon | undefined;
  afterEach(async () => {
    if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) await daemon.kill9();
    daemon = undefined;
  });

  it('a replicator whose Redis was shut down exits within replicator.stopTimeout of SIGTERM', async () => {
    const { redis, regions } = await scope.regionsOnOwnRedis({ chunkSize: 64 * KiB, replicator: { stopTimeout: '3s' } });
    const r = regions;
    daemon = startDaemon(r, 'eu', { tag: 'no-redis' });
    const d = daemon;
    await waitFor(async () => (await d.output()).includes('replicator started'), 20_000, 'the daemon to start', 20);
    await putBytes(r, { '/s/a.bin': randomBytes(200 * KiB) });
    await waitForConvergence(r, 'eu', 20_000);
    await redis.shutdown();
    await sleep(2_000);
    const stopped = await d.terminate();
    // The deadline, plus the time a Node process takes to exit.
    expect(stopped.ms, await d.output()).toBeLessThan(3_000 + 1_500);
    expect(stopped.code).toBe(0);
    expect(await d.output()).toContain('stop deadline passed');
  });
});
