import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keySlot, queuePrefix, volumeKeys } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningNode, startCacheNode } from '../support/cache-cluster.js';
import { jsonResult, runFerry, sha256File, writeRandomFile } from '../support/cli.js';
import { createRegions, type Daemon, MiB, type Regions, startDaemon, waitFor, waitForConvergence } from '../support/regions.js';
import { freePort } from '../support/servers/free-port.js';
import { type RunningRedisCluster, startRedisCluster } from '../support/servers/redis-cluster.js';
import { command } from '../support/servers/redis-process.js';

/*
 * Both regions on Redis Clusters of 3 masters (one cluster per region: a mirror uses the source's
 * key names), everything else as in production: `ferry put` at the source, the replicator daemon
 * and 3 cache-node processes of the mirror, `ferry warmup --wait` and `ferry get` from the mirror.
 */
describe('regions on a real 3-master Redis Cluster', () => {
  const token = randomBytes(12).toString('hex');
  const apiToken = randomBytes(12).toString('hex');
  let src: RunningRedisCluster;
  let eu: RunningRedisCluster;
  let regions: Regions;
  let daemon: Daemon | undefined;
  const nodes: RunningNode[] = [];

  beforeAll(async () => {
    [src, eu] = await Promise.all([startRedisCluster(), startRedisCluster()]);
    regions = await createRegions({
      chunkSize: MiB,
      source: { redis: src.target },
      mirrors: {
        eu: {
          redis: eu.target,
          cache: { replicas: 2, token, connectTimeoutMs: 300 },
          api: { listen: `127.0.0.1:${await freePort()}`, token: apiToken },
          copy: { concurrency: 4 },
        },
      },
    });
    daemon = startDaemon(regions, 'eu', { tag: 'cluster' });
    await waitFor(async () => (await daemon?.output())?.includes('replicator started') ?? false, 30_000, 'the replicator to start').catch(
      async (err) => {
        throw new Error(`${(err as Error).message}: ${(await daemon?.output())?.slice(-3000)}`);
      },
    );
    nodes.push(
      ...(await Promise.all(
        [1, 2, 3].map((i) =>
          startCacheNode({
            id: `n${i}`,
            weight: i,
            capacity: '1GiB',
            configPath: regions.configPath,
            region: 'eu',
            dir: join(regions.dir, 'nodes', `n${i}`),
          }),
        ),
      )),
    );
  });

  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    if (daemon && daemon.child.exitCode === null) await daemon.terminate();
    await regions?.close();
    await Promise.allSettled([src?.stop(), eu?.stop()]);
  });

  it('puts every key of a volume, and every key of its queues, in one slot the cluster agrees on', async () => {
    const keys = [...Object.values(volumeKeys(regions.volume))];
    const port = Number(eu.nodes[0]?.split(':')[1]);
    const slot = Number(await command(port, ['CLUSTER', 'KEYSLOT', keys[0] as string]));
    for (const key of keys) {
      expect(keySlot(key), key).toBe(slot);
      expect(Number(await command(port, ['CLUSTER', 'KEYSLOT', key])), key).toBe(slot);
    }
    const prefix = queuePrefix(regions.volume);
    const queueSlot = Number(await command(port, ['CLUSTER', 'KEYSLOT', `${prefix}:copy:wait`]));
    expect(keySlot(`${prefix}:warm:id`)).toBe(queueSlot);
  });

  it('put → mirror → warmup → get: the model is copied, warmed on 3 nodes and read back intact', async () => {
    const local = join(regions.dir, 'model');
    await mkdir(local, { recursive: true });
    const digests: Record<string, string> = {
      'model-00001-of-00002.safetensors': await writeRandomFile(join(local, 'model-00001-of-00002.safetensors'), 6 * MiB + 123),
      'model-00002-of-00002.safetensors': await writeRandomFile(join(local, 'model-00002-of-00002.safetensors'), 5 * MiB),
    };
    await writeFile(join(local, 'config.json'), '{"architectures":["Test"]}\n');
    digests['config.json'] = await sha256File(join(local, 'config.json'));

    const put = await runFerry(['put', local, '/models/m', '--json', '--config', regions.configPath]);
    expect(put.code, put.stderr).toBe(0);
    expect(jsonResult(put)).toMatchObject({ command: 'put', files: 3 });
    await waitForConvergence(regions, 'eu', 60_000);

    // The volume's keys live on one master of the mirror's cluster, as the scripts need.
    const owner = await eu.nodeOf(volumeKeys(regions.volume).entries);
    expect(await eu.nodeOf(volumeKeys(regions.volume).present)).toBe(owner);

    const warm = await runFerry(['warmup', '/models/m', '--region', 'eu', '--wait', '--json', '--config', regions.configPath], {
      timeoutMs: 120_000,
    });
    expect(warm.code, warm.stderr).toBe(0);
    const summary = jsonResult(warm) as { via: string; complete: boolean; residency: { percent: number; chunks: number } };
    expect(summary).toMatchObject({ via: 'api', complete: true, residency: { percent: 100, chunks: 13 } });

    const out = join(regions.dir, 'out');
    const get = await runFerry(['get', '/models/m', out, '--region', 'eu', '--json', '--config', regions.configPath]);
    expect(get.code, get.stderr).toBe(0);
    for (const [name, sha256] of Object.entries(digests)) expect(await sha256File(join(out, name)), name).toBe(sha256);

    // No script or transaction was refused (CROSSSLOT) and nothing failed along the way.
    const log = (await daemon?.output()) ?? '';
    expect(log).not.toContain('CROSSSLOT');
    expect(log.split('\n').filter((line) => line.includes('"level":50'))).toEqual([]);
  });
});
