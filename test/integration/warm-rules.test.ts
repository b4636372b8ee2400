import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheNodeClient, rendezvousOwners } from '@ferry/cache';
import type { ChunkId } from '@ferry/core';
import { type CacheMember, Membership } from '@ferry/meta';
import type { WarmupState } from '@ferry/region';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningNode, startCacheNode } from '../support/cache-cluster.js';
import { jsonResult, runFerry, writeRandomFile } from '../support/cli.js';
import { createRegions, type Daemon, entryOf, MiB, type Regions, startDaemon, waitFor } from '../support/regions.js';
import { freePort } from '../support/servers/free-port.js';

const ms = (n: number) => new Promise((r) => setTimeout(r, n));

interface Setup {
  regions: Regions;
  daemon: Daemon;
  nodes: RunningNode[];
  client: CacheNodeClient;
  members: CacheMember[];
  api: { base: string; token: string };
}

/**
 * Regions `src` and `eu` with a warm rule `{ path: /models/prod, replicas: 2 }` in region `warmIn`,
 * 3 cache-node processes of that region and its replicator as a daemon process. The nodes' config
 * gives them an empty source store: in the mirror, a node that read a chunk through from the
 * source would find nothing, so 100 % residency proves they were filled behind the copy.
 */
async function setUp(warmIn: 'src' | 'eu'): Promise<Setup> {
  const token = randomBytes(12).toString('hex');
  const api = { listen: `127.0.0.1:${await freePort()}`, token: randomBytes(12).toString('hex') };
  const region = {
    cache: { replicas: 2, token, connectTimeoutMs: 300 },
    warm: [{ path: '/models/prod', replicas: 2 }],
    api,
  };
  const regions = await createRegions({
    chunkSize: MiB,
    ...(warmIn === 'src' ? { source: region } : {}),
    // 4 MiB/s: a copy takes seconds, so warming that waits for it is tested, not just warming.
    mirrors: { eu: { copy: { concurrency: 4, bytesPerSecond: 4 * MiB }, ...(warmIn === 'eu' ? region : {}) } },
  });
  let nodesConfig = regions.configPath;
  if (warmIn === 'eu') {
    const doc = JSON.parse(await readFile(regions.configPath, 'utf8'));
    await mkdir(join(regions.dir, 'empty-src'), { recursive: true });
    doc.regions.src.store = `file://${join(regions.dir, 'empty-src')}?fsync=0`;
    nodesConfig = join(regions.dir, 'nodes.json');
    await writeFile(nodesConfig, JSON.stringify(doc));
  }
  const daemon = startDaemon(regions, warmIn, { tag: 'warm' });
  await waitFor(async () => (await daemon.output()).includes('replicator started'), 30_000, 'the replicator to start').catch(
    async (err) => {
      throw new Error(`${(err as Error).message}: ${(await daemon.output()).slice(-3000)}`);
    },
  );
  const nodes = await Promise.all(
    [1, 2, 3].map((i) =>
      startCacheNode({
        id: `n${i}`,
        weight: i,
        capacity: '1GiB',
        configPath: nodesConfig,
        region: warmIn,
        dir: join(regions.dir, `n${i}`),
      }),
    ),
  );
  const handle = warmIn === 'src' ? regions.source : regions.mirror('eu');
  const members = await new Membership({ redis: handle.redis, volume: regions.volume }).members();
  expect(members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
  return {
    regions,
    daemon,
    nodes,
    client: new CacheNodeClient({ token, connectTimeoutMs: 300 }),
    members,
    api: { base: `http://${api.listen}`, token: api.token },
  };
}

async function tearDown(s: Setup | undefined): Promise<void> {
  if (!s) return;
  await Promise.allSettled(s.nodes.map((n) => n.stop()));
  await s.client.close();
  if (s.daemon.child.exitCode === null) await s.daemon.terminate();
  await s.regions.close();
}

/** A model folder of `files` random files of `bytes` each, put at the source with `ferry put`; returns its chunk ids. */
async function putModel(s: Setup, path: string, files: number, bytes: number): Promise<{ version: string; chunks: ChunkId[] }> {
  const local = join(s.regions.dir, 'local', path);
  await mkdir(local, { recursive: true });
  for (let f = 1; f <= files; f++) await writeRandomFile(join(local, `model-${f}.safetensors`), bytes);
  const put = await runFerry(['put', local, path, '--json', '--config', s.regions.configPath]);
  expect(put.code, put.stderr).toBe(0);
  const entries = await Promise.all(
    Array.from({ length: files }, (_, i) => entryOf(s.regions.source, `${path}/model-${i + 1}.safetensors`)),
  );
  return {
    version: entries[0]?.version as string,
    chunks: [...new Set(entries.flatMap((e) => e?.chunks.map((c) => c.id) ?? []))],
  };
}

/** Chunk ids each node holds, from the nodes' own inventories. */
async function inventories(s: Setup): Promise<Map<string, Set<ChunkId>>> {
  const held = new Map<string, Set<ChunkId>>();
  for (const m of s.members) {
    const ids = new Set<ChunkId>();
    for await (const item of s.client.inventoryAll(m)) ids.add(item.id);
    held.set(m.id, ids);
  }
  return held;
}

/** `ferry status <path> --region <r> --json`: the verified residency on the region's nodes. */
async function residencyOf(s: Setup, region: string, path: string): Promise<{ percent: number; chunks: number }> {
  const status = await runFerry(['status', path, '--region', region, '--json', '--config', s.regions.configPath]);
  expect(status.code, status.stderr).toBe(0);
  return (jsonResult(status) as { residency: { percent: number; chunks: number } }).residency;
}

async function warmupState(s: Setup, id: string): Promise<WarmupState | undefined> {
  const res = await fetch(`${s.api.base}/warmup/${id}`, { headers: { authorization: `Bearer ${s.api.token}` } });
  return res.status === 200 ? ((await res.json()) as WarmupState) : undefined;
}

async function expectWarmedAndReady(s: Setup, region: string, path: string, model: { version: string; chunks: ChunkId[] }): Promise<void> {
  await waitFor(async () => (await residencyOf(s, region, path)).percent === 100, 90_000, `${path} to be warm`, 500).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${(await s.daemon.output()).slice(-3000)}`);
  });
  expect(await residencyOf(s, region, path)).toMatchObject({ percent: 100, chunks: model.chunks.length });
  const held = await inventories(s);
  for (const id of model.chunks)
    for (const owner of rendezvousOwners(s.members, id, 2)) expect(held.get(owner.id)?.has(id), `${id} on ${owner.id}`).toBe(true);
  // The rule's warmup is a flow like any other: GET /warmup/:id says it is ready.
  const state = await warmupState(s, `wr-${model.version}-r2`);
  expect(state).toMatchObject({ ready: true, complete: true, missing: 0, replicas: 2, rule: '/models/prod' });
}

describe('warm rules in a mirror: a new or changed model under the rule is warmed with no warmup command', () => {
  let s: Setup | undefined;
  beforeAll(async () => {
    s = await setUp('eu');
  });
  afterAll(() => tearDown(s));

  it('warms a newly put model on the 3 cache nodes behind the copy, to 100 % verified residency', async () => {
    const setup = s as Setup;
    const prod = await putModel(setup, '/models/prod/llama', 2, 6 * MiB);
    const dev = await putModel(setup, '/models/dev/llama', 1, 3 * MiB);
    await expectWarmedAndReady(setup, 'eu', '/models/prod/llama', prod);
    // What no rule names stays off the nodes (its copy is done by now: it was put second).
    await waitFor(async () => (await setup.regions.mirror('eu').mirror.missing(dev.chunks)).length === 0, 60_000, 'the dev copy');
    await ms(1500);
    const held = await inventories(setup);
    for (const id of dev.chunks) for (const ids of held.values()) expect(ids.has(id)).toBe(false);
  });

  it('warms a changed file under the rule (a new version, new chunks)', async () => {
    const setup = s as Setup;
    const changed = await putModel(setup, '/models/prod/llama', 1, 5 * MiB);
    await expectWarmedAndReady(setup, 'eu', '/models/prod/llama/model-1.safetensors', changed);
  });
});

describe('warm rules in the source: a model is warmed on commit', () => {
  let s: Setup | undefined;
  beforeAll(async () => {
    s = await setUp('src');
  });
  afterAll(() => tearDown(s));

  it('warms a newly put model on the 3 cache nodes of the source, to 100 % verified residency', async () => {
    const setup = s as Setup;
    const prod = await putModel(setup, '/models/prod/mistral', 2, 4 * MiB);
    await expectWarmedAndReady(setup, 'src', '/models/prod/mistral', prod);
  });
});
