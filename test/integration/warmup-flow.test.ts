import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheNodeClient, metricValue, rendezvousOwners } from '@ferry/cache';
import { type ChunkId, type ChunkRef, chunkKey, type NewEntry, nativeChunkId, parseConfig, sha256Hex } from '@ferry/core';
import { FILLS_PER_ADD, WarmQueue } from '@ferry/jobs';
import { type CacheMember, connectRedis, Membership, Meta, MirrorMeta } from '@ferry/meta';
import type { WarmupState } from '@ferry/region';
import { Replicator } from '@ferry/replicator';
import { FsStore } from '@ferry/stores';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CacheRegions, runWarmup } from '../support/cache-cluster.js';
import { jsonResult, runFerry } from '../support/cli.js';
import { testLogger } from '../support/replicators.js';

const MiB = 2 ** 20;

/**
 * A source `src` and a mirror `eu` (Redis DBs 14 and 15) with 3 cache-node processes in `eu` and
 * a mirror replicator in-process with its control API. The cache nodes' config points their
 * source store at an empty directory: a node that read a chunk through from the source would find
 * nothing, so 100 % residency with one upstream fetch per placement proves the nodes were filled
 * from the region's store, behind the copy.
 */
describe('warmup flows on the replicator (POST /warmup, warm workers behind the copy)', () => {
  const redisUrl = inject('redisUrl');
  const api = { token: randomBytes(12).toString('hex') };
  const r = new CacheRegions();
  let replicator: Replicator;
  let base: string;
  let members: CacheMember[];
  let client: CacheNodeClient;
  let srcStore: FsStore;
  let srcMeta: Meta;
  let mirror: MirrorMeta;
  let euMeta: Meta;
  let replicatorDoc: Record<string, unknown>;

  beforeAll(async () => {
    r.root = await mkdtemp(join(tmpdir(), 'ferry-warmflow-'));
    await mkdir(join(r.root, 'empty-src'), { recursive: true });
    const eu = {
      store: `file://${r.root}/eu?fsync=0`,
      redis: `${redisUrl}/15`,
      cache: { replicas: 2, token: r.token, connectTimeoutMs: 200 },
    };
    // What the cache nodes see: the source region's store is an empty directory.
    const nodesDoc = {
      volume: r.volume,
      chunkSize: MiB,
      source: 'src',
      regions: { src: { store: `file://${r.root}/empty-src?fsync=0`, redis: `${redisUrl}/14` }, eu },
    };
    replicatorDoc = {
      ...nodesDoc,
      regions: {
        src: { store: `file://${r.root}/src?fsync=0`, redis: `${redisUrl}/14` },
        // 4 MiB/s: a 16 MiB model takes about 4 s to copy, long enough to warm behind it.
        eu: { ...eu, api: { listen: '127.0.0.1:0', token: api.token }, copy: { bytesPerSecond: 4 * MiB, concurrency: 4 } },
      },
    };
    r.config = parseConfig(nodesDoc);
    r.configPath = join(r.root, 'ferry.json');
    await writeFile(r.configPath, JSON.stringify(nodesDoc));
    const srcRedis = connectRedis(`${redisUrl}/14`);
    const euRedis = connectRedis(`${redisUrl}/15`);
    srcStore = new FsStore({ root: `${r.root}/src`, fsync: false });
    srcMeta = new Meta({ redis: srcRedis, volume: r.volume });
    euMeta = new Meta({ redis: euRedis, volume: r.volume });
    mirror = new MirrorMeta({ redis: euRedis, volume: r.volume });
    r.source = { store: srcStore, meta: srcMeta, redis: srcRedis };
    r.mirror = { store: new FsStore({ root: `${r.root}/eu`, fsync: false }), meta: euMeta, mirror, redis: euRedis };
    r.membership = new Membership({ redis: euRedis, volume: r.volume });
    await r.startNodes([
      { id: 'n1', weight: 1, capacity: '1GiB' },
      { id: 'n2', weight: 2, capacity: '1GiB' },
      { id: 'n3', weight: 3, capacity: '1GiB' },
    ]);
    members = await r.members();
    client = new CacheNodeClient({ token: r.token, connectTimeoutMs: 200 });
    replicator = new Replicator({
      config: parseConfig(replicatorDoc),
      region: 'eu',
      logger: testLogger('eu'),
      listen: '127.0.0.1:0',
      watcher: { leaseTtlMs: 1500 },
      warm: { recheckMs: 200 },
    });
    await replicator.start();
    base = `http://${replicator.address?.replace(/^http:\/\//, '')}`;
  });
  afterAll(async () => {
    await replicator?.stop();
    await client?.close();
    await r.close();
  });

  /** `files` files of `fileBytes` random bytes, chunked into the source store and committed there (not copied). */
  async function commitAtSource(dir: string, files: number, fileBytes: number): Promise<ChunkRef[]> {
    const entries: NewEntry[] = [];
    const all: ChunkRef[] = [];
    for (let f = 0; f < files; f++) {
      const chunks: ChunkRef[] = [];
      const whole: Buffer[] = [];
      for (let offset = 0; offset < fileBytes; offset += MiB) {
        const bytes = randomBytes(Math.min(MiB, fileBytes - offset));
        whole.push(bytes);
        const id = nativeChunkId(sha256Hex(bytes));
        await srcStore.put(chunkKey(id), bytes);
        chunks.push({ id, size: bytes.length });
      }
      all.push(...chunks);
      entries.push({
        path: `${dir}/model-${f + 1}.safetensors`,
        size: fileBytes,
        mtime: Date.now(),
        sha256: sha256Hex(Buffer.concat(whole)),
        chunkSize: MiB,
        chunks,
      });
    }
    await srcMeta.commit(entries);
    return all;
  }

  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, token = api.token): Promise<{ status: number; json: T }> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json()) as T };
  }

  async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  async function upstreamFetches(): Promise<number> {
    let sum = 0;
    for (const m of members) sum += metricValue(await client.metrics(m), 'ferry_cache_upstream_fetches_total') ?? 0;
    return sum;
  }

  async function upstreamFailures(): Promise<number> {
    let sum = 0;
    for (const m of members) sum += metricValue(await client.metrics(m), 'ferry_cache_upstream_failures_total') ?? 0;
    return sum;
  }

  /** Every chunk is in each of its owners' inventories, and the reported residency says the same. */
  async function expectOnOwners(chunks: ChunkRef[], state: WarmupState): Promise<void> {
    const inventories = new Map<string, Set<ChunkId>>();
    for (const m of members) {
      const ids = new Set<ChunkId>();
      for await (const item of client.inventoryAll(m)) ids.add(item.id);
      inventories.set(m.id, ids);
    }
    const expected = new Map(members.map((m) => [m.id, 0]));
    for (const c of chunks) {
      for (const owner of rendezvousOwners(members, c.id, 2)) {
        expect(inventories.get(owner.id)?.has(c.id), `${c.id} on ${owner.id}`).toBe(true);
        expected.set(owner.id, (expected.get(owner.id) ?? 0) + 1);
      }
    }
    expect(state.residency.percent).toBe(100);
    expect(state.residency.chunks).toBe(chunks.length);
    expect(state.residency.placementsHeld).toBe(chunks.length * 2);
    for (const n of state.residency.nodes) {
      expect(n.held).toBe(expected.get(n.id));
      expect(n.expected).toBe(expected.get(n.id));
    }
  }

  it('is token-protected and refuses bad requests', async () => {
    expect((await call('POST', '/warmup', { paths: ['/x'] }, 'wrong')).status).toBe(401);
    expect((await call('POST', '/warmup', { paths: 'x' })).status).toBe(400);
    expect((await call('POST', '/warmup', { paths: ['/no/such/model'] })).status).toBe(404);
    expect((await call('GET', '/warmup/12345')).status).toBe(404);
  });

  it('warms a copied 16 MiB model to 100 % verified residency matching the nodes’ inventories', async () => {
    const chunks = await commitAtSource('/models/a', 2, 8 * MiB);
    await until('the copy', async () => ((await mirror.missing(chunks.map((c) => c.id))).length === 0 ? true : undefined));
    const before = await upstreamFetches();
    const posted = await call<{ id: string; chunks: number; placements: number }>('POST', '/warmup', { paths: ['/models/a'] });
    expect(posted.status).toBe(202);
    expect(posted.json).toMatchObject({ chunks: 16, placements: 32 });
    const state = await until('100 % residency', async () => {
      const { json } = await call<WarmupState>('GET', `/warmup/${posted.json.id}`);
      return json.complete ? json : undefined;
    });
    await expectOnOwners(chunks, state);
    expect(state).toMatchObject({ ready: true, missing: 0, replicas: 2 });
    expect((await upstreamFetches()) - before).toBe(32);
    // The parent completes once its children have (BullMQ flow).
    const done = await until('the flow to finish', async () => {
      const { json } = await call<WarmupState>('GET', `/warmup/${posted.json.id}`);
      return json.finished ? json : undefined;
    });
    expect(done.state).toBe('completed');
    expect(done.children).toMatchObject({ processed: 32, pending: 0, failed: 0 });
  });

  it('a warmup requested before the copies finish waits for them, ends at 100 %, and no node reads the source', async () => {
    const chunks = await commitAtSource('/models/b', 1, 16 * MiB);
    // The mirror has the metadata within a second; the throttled copy takes seconds more.
    await until('the mirror metadata', async () => (await euMeta.tryStat('/models/b/model-1.safetensors')) ?? undefined);
    expect((await mirror.missing(chunks.map((c) => c.id))).length).toBeGreaterThan(0);
    const [fetchesBefore, failuresBefore] = [await upstreamFetches(), await upstreamFailures()];
    const posted = await call<{ id: string; chunks: number; placements: number }>('POST', '/warmup', { paths: ['/models/b'] });
    expect(posted.status).toBe(202);
    expect(posted.json).toMatchObject({ chunks: 16, placements: 32 });
    // Not ready while the copy is still under way: the region lacks chunks, the nodes do too.
    const early = (await call<WarmupState>('GET', `/warmup/${posted.json.id}`)).json;
    expect(early.ready).toBe(false);
    expect(early.missing).toBeGreaterThan(0);
    const state = await until('100 % residency', async () => {
      const { json } = await call<WarmupState>('GET', `/warmup/${posted.json.id}`);
      return json.complete ? json : undefined;
    });
    await expectOnOwners(chunks, state);
    expect(state).toMatchObject({ ready: true, missing: 0 });
    // One read-through per placement, none failed: every fill found the chunk in the region's store
    // (the nodes' source is empty, so a fill ahead of the copy would have been a failed fetch).
    expect((await upstreamFetches()) - fetchesBefore).toBe(32);
    expect((await upstreamFailures()) - failuresBefore).toBe(0);
  });

  it('`ferry warmup --wait` goes through the replicator API when the region has an api section', async () => {
    const chunks = await commitAtSource('/models/c', 1, 4 * MiB);
    await until('the mirror metadata', async () => (await euMeta.tryStat('/models/c/model-1.safetensors')) ?? undefined);
    const cliDoc = structuredClone(replicatorDoc) as { regions: { eu: { api: { listen: string } } } };
    cliDoc.regions.eu.api.listen = base.replace(/^http:\/\//, '');
    const cliConfig = join(r.root, 'ferry-cli.json');
    await writeFile(cliConfig, JSON.stringify(cliDoc));
    const run = await runWarmup(cliConfig, '/models/c', ['--region', 'eu', '--wait']);
    expect(run.result.code, run.result.stderr).toBe(0);
    const summary = run.summary as unknown as { via: string; complete: boolean; ready: boolean; residency: { chunks: number } };
    expect(summary).toMatchObject({ via: 'api', complete: true, ready: true, missing: 0 });
    expect(summary.residency.chunks).toBe(chunks.length);

    // `ferry status <path>` shows the residency on the region's cache nodes next to the store's copy.
    const status = await runFerry(['status', '/models/c', '--region', 'eu', '--json', '--config', cliConfig]);
    expect(status.code, status.stderr).toBe(0);
    expect(jsonResult(status)).toMatchObject({ region: 'eu', path: '/models/c', residency: { percent: 100, chunks: chunks.length } });
  });

  it('a warmup of many files is added file by file in steps of at most FILLS_PER_ADD fills, and finishes at 100 %', async () => {
    const chunks = await commitAtSource('/models/many', 150, 1024);
    await until('the copy', async () => ((await mirror.missing(chunks.map((c) => c.id))).length === 0 ? true : undefined));
    const posted = await call<{ id: string; chunks: number; placements: number }>('POST', '/warmup', { paths: ['/models/many'] });
    expect(posted.json).toMatchObject({ chunks: 150, placements: 300 });
    const queue = new WarmQueue({ connection: r.mirror.redis, volume: r.volume });
    try {
      // More fills than one step holds: the parent was added with the first step and a gate.
      expect((await queue.get(posted.json.id))?.data.split).toBe(true);
      const done = await until('the flow to finish', async () => {
        const { json } = await call<WarmupState>('GET', `/warmup/${posted.json.id}`);
        return json.finished ? json : undefined;
      });
      expect(done).toMatchObject({ state: 'completed', complete: true, children: { processed: 300, pending: 0, failed: 0 } });
      await expectOnOwners(chunks, done);
    } finally {
      await queue.close();
    }
    expect(300).toBeGreaterThan(FILLS_PER_ADD);
  });

  it('overlapping warmups of the same path both finish', async () => {
    const chunks = await commitAtSource('/models/d', 1, 6 * MiB);
    await until('the mirror metadata', async () => (await euMeta.tryStat('/models/d/model-1.safetensors')) ?? undefined);
    const first = await call<{ id: string }>('POST', '/warmup', { paths: ['/models/d'] });
    const second = await call<{ id: string }>('POST', '/warmup', { paths: ['/models/d/'] });
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.json.id).not.toBe(first.json.id);
    for (const id of [first.json.id, second.json.id]) {
      const done = await until(`warmup ${id} to finish`, async () => {
        const { json } = await call<WarmupState>('GET', `/warmup/${id}`);
        return json.finished ? json : undefined;
      });
      expect(done).toMatchObject({ state: 'completed', complete: true });
      expect(done.residency.chunks).toBe(chunks.length);
    }
  });
});
