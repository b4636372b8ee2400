import { randomBytes } from 'node:crypto';
import { FencedError, type RegionConfig } from '@ferry/core';
import { Lease, ResyncIncompleteError } from '@ferry/meta';
import { Credentials } from '@ferry/region';
import { build as buildApi, type Replicator } from '@ferry/replicator';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { API_LIMITS } from '../support/defaults.js';
import { differences, KiB, putBytes, regionState, verifyMirrorChunks, waitFor, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';
import { useRegions } from '../support/scope.js';

/*
 * Acceptance 8 and 9: several replicas of the daemon in one region (one leads the watcher, all
 * copy; a stopped leader is replaced within seconds), overlapping resyncs, and the control API.
 */

const scope = useRegions();

const copied = async (r: Replicator) => (await r.metrics.chunksCopied.get()).values[0]?.value ?? 0;

describe('several replicas in one region', () => {
  it('elect exactly one leader, share the copies, and hand over within seconds when the leader stops', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const a = await scope.replicator(r, { watcher: { leaseTtlMs: 1500 } });
    const b = await scope.replicator(r, { watcher: { leaseTtlMs: 1500 } });
    const leaders = async () => [(await a.status()).leader, (await b.status()).leader];
    await waitFor(async () => (await leaders()).filter(Boolean).length === 1, 10_000, 'one leader');
    for (let i = 0; i < 40; i++) await putBytes(r, { [`/r/one/${i}`]: randomBytes(256 * KiB + i) });
    await waitForConvergence(r, 'eu', 30_000);
    // Still exactly one leader, agreed on by status and health; both replicas copied chunks.
    const [aLeads, bLeads] = await leaders();
    expect([aLeads, bLeads].filter(Boolean)).toHaveLength(1);
    expect((await a.health()).detail.leader).toBe(aLeads);
    expect((await b.health()).detail.leader).toBe(bLeads);
    expect(await copied(a)).toBeGreaterThan(0);
    expect(await copied(b)).toBeGreaterThan(0);
    // Each chunk copied once in all (jobs are keyed by chunk id): 40 files of 4 whole chunks and, but the first, a short one.
    expect((await copied(a)) + (await copied(b))).toBe(40 * 4 + 39);

    const [leader, follower] = aLeads ? [a, b] : [b, a];
    await leader.stop();
    await putBytes(r, { '/r/two/after-stop': randomBytes(100 * KiB) });
    await waitFor(async () => (await follower.status()).leader === true, 5_000, 'the other replica to take over');
    await waitForConvergence(r, 'eu', 20_000);
    for (let i = 0; i < 10; i++) await putBytes(r, { [`/r/three/${i}`]: randomBytes(10 * KiB + i) });
    await r.source.meta.delete('/r/one', { recursive: true });
    await waitForConvergence(r, 'eu', 20_000);
    await verifyMirrorChunks(r, 'eu');
  });

  it('a leader whose lease was taken stops writing at once; the mirror continues when the lease is free again', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const a = await scope.replicator(r, { watcher: { leaseTtlMs: 1500 } });
    const b = await scope.replicator(r, { watcher: { leaseTtlMs: 1500 } });
    await putBytes(r, { '/l/before': randomBytes(1000) });
    await waitForConvergence(r, 'eu', 10_000);
    const m = r.mirror('eu');
    // Someone else takes the lease for 3 s, as a replica that took over from a paused leader would
    // (the leader's lease is dropped, as if it had run out): a new fencing token, so the old
    // leader's writes are refused even before it renews.
    const key = m.mirror.keys.watcherLease;
    const intruder = new Lease({ redis: m.redis, key, fenceKey: m.mirror.keys.fence, endKey: m.mirror.keys.watcherLeaseEnd, ttlMs: 3000 });
    const takeOver = async () => (await m.redis.del(key)) >= 0 && (await intruder.hold()) !== '';
    await waitFor(takeOver, 5_000, 'the intruder to take the lease', 10);
    await putBytes(r, { '/l/during': randomBytes(1000) });
    let looked = 0;
    while ((await intruder.holder()) === intruder.owner) {
      expect(await m.meta.tryStat('/l/during')).toBeUndefined();
      looked += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // The check above ran while the intruder held the lease (not zero times because it had already expired).
    expect(looked).toBeGreaterThan(20);
    await waitForConvergence(r, 'eu', 10_000);
    expect([(await a.status()).leader, (await b.status()).leader].filter(Boolean)).toHaveLength(1);
  });

  it('overlapping resyncs (a deposed replica mid-resync, its successor from a later snapshot, a seen set lost between pages) lose nothing', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB });
    const r = regions;
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 60; i++) files[`/o/${String(i).padStart(2, '0')}`] = randomBytes(100 + i);
    await putBytes(r, files);
    const m = r.mirror('eu');
    const { mirror } = m;
    const lease = (ttlMs: number) =>
      new Lease({ redis: m.redis, key: mirror.keys.watcherLease, fenceKey: mirror.keys.fence, endKey: mirror.keys.watcherLeaseEnd, ttlMs });
    const start = async () => {
      const h = await r.source.meta.log.history();
      return { snapshot: h.last ?? '0-0', epoch: h.epoch, added: h.added };
    };
    const scan = async () => (await r.source.meta.scanEntries({ count: 1000 })).entries;
    // Replica A leads and gets halfway through a resync from snapshot 1.
    const tokenA = await lease(300).hold();
    const a = await mirror.beginResync(await start(), tokenA);
    const first = await scan();
    await mirror.applySnapshot(a, first.slice(0, 30), tokenA);
    // The source changes: ten files go, two arrive. A's lease runs out; replica B takes it and
    // starts over from snapshot 2.
    for (let i = 0; i < 10; i++) await r.source.meta.delete(`/o/${String(i).padStart(2, '0')}`);
    await putBytes(r, { '/o/new-1': randomBytes(10), '/o/new-2': randomBytes(20) });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const tokenB = await lease(60_000).hold();
    expect(Number(tokenB)).toBeGreaterThan(Number(tokenA));
    const b = await mirror.beginResync(await start(), tokenB);
    const second = await scan();
    expect(second).toHaveLength(52);
    // A wakes up and writes on: every write of it is refused.
    await expect(mirror.applySnapshot(a, first.slice(30), tokenA)).rejects.toBeInstanceOf(FencedError);
    await expect(mirror.finishResync(a, { token: tokenA })).rejects.toBeInstanceOf(FencedError);
    // B applies two pages, and its seen set is lost in between (an eviction, a person): the
    // prune refuses, and nothing the source has is removed.
    await mirror.applySnapshot(b, second.slice(0, 26), tokenB);
    await m.redis.del(b.seen);
    await mirror.applySnapshot(b, second.slice(26), tokenB);
    await expect(mirror.finishResync(b, { token: tokenB })).rejects.toBeInstanceOf(ResyncIncompleteError);
    expect(await mirror.resyncState()).toMatchObject({ id: b.id, state: 'incomplete' });
    const kept = Object.keys((await regionState(m)).entries);
    for (const entry of second) expect(kept).toContain(entry.path);
    // Started over, the resync converges to exactly the source's entries, deletions included.
    const c = await mirror.beginResync(await start(), tokenB);
    await mirror.applySnapshot(c, await scan(), tokenB);
    const gone = first.slice(0, 30).filter((e) => !second.some((s) => s.path === e.path)).length;
    expect(gone).toBeGreaterThan(0);
    expect(await mirror.finishResync(c, { token: tokenB })).toBe(gone);
    expect(await differences(r, 'eu')).toEqual([expect.stringContaining('referenced chunks not present')]);
    expect(await mirror.resyncState()).toMatchObject({ state: 'done', count: 3 });
    expect(await m.redis.keys(`${mirror.keys.resyncSeen}*`)).toEqual([]);
  });
});

describe('control API', () => {
  it('serves /healthz openly, and /status and /metrics only with the bearer token', async () => {
    const token = randomBytes(16).toString('hex');
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: { api: { token } } } });
    const r = regions;
    const rep = await scope.replicator(r, { listen: '127.0.0.1:0' });
    expect(rep.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const base = rep.address as string;
    // The first sync (a resync of the empty source) before the put, so the put is one applied record.
    await waitFor(async () => (await r.mirror('eu').mirror.cursor()) !== undefined, 20_000, 'the first sync');
    await putBytes(r, { '/api/a': randomBytes(100 * KiB), '/api/b': randomBytes(1000) });
    await waitForConvergence(r, 'eu', 20_000);

    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, detail: { leader: true, redis: 'ready' } });
    expect((await fetch(`${base}/healthz?verbose=1`)).status).toBe(200);

    for (const path of ['/status', '/metrics']) {
      const none = await fetch(`${base}${path}`);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/\bBearer$/);
      expect((await fetch(`${base}${path}`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${base}${path}`, { headers: { authorization: token } })).status).toBe(401);
    }
    const auth = { headers: { authorization: `Bearer ${token}` } };
    const status = await fetch(`${base}/status`, auth);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ region: 'eu', role: 'mirror', leader: true, chunks: { referenced: 3, missing: 0 } });
    const metrics = await fetch(`${base}/metrics`, auth);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toContain('ferry_replicator_records_applied_total{region="eu"} 1');
    expect(text).toContain(`ferry_replicator_bytes_copied_total{region="eu"} ${100 * KiB + 1000}`);
    expect(text).toContain('ferry_replicator_leader{region="eu"} 1');
    expect(text).not.toContain(token);
  });

  it('refuses to serve without a token unless the config says open, before starting anything', async () => {
    const regions = await scope.regions({ mirrors: { eu: { api: {} } } });
    await expect(startReplicator(regions, 'eu', { listen: '127.0.0.1:0' })).rejects.toThrow(/set a token \(or open: true\)/);
    expect(() => new Credentials('eu', regions?.config.regions.eu as RegionConfig).apiServer('127.0.0.1:7600')).toThrow(
      'set a token (or open: true)',
    );
    const open = buildApi({
      tokens: { open: true },
      limits: API_LIMITS,
      registry: new Registry(),
      status: async () => ({ fine: true }),
      health: async () => ({ ok: false }),
    });
    expect((await open.inject({ url: '/status' })).json()).toEqual({ fine: true });
    expect((await open.inject({ url: '/healthz' })).statusCode).toBe(503);
    await open.close();
  });
});
