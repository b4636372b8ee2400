import { NotDurableError, parseConfig, replicaAcks } from '@ferry/core';
import { connectRedis, Meta, type RedisClient } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRedisCluster, startRedisCluster } from '../support/servers/redis-cluster.js';
import { command } from '../support/servers/redis-process.js';
import { waitFor } from '../support/wait.mjs';

/*
 * "Acknowledged means durable" on a Redis Cluster (3 masters, a replica each): a commit waits
 * (WAIT, `minReplicas` 1 by default) on the connection to the master that serves the volume's
 * slot. With that master's replica frozen (SIGSTOP) the commit is applied but not acknowledged.
 */
describe('acknowledged commits on a Redis Cluster with replicas', () => {
  let cluster: RunningRedisCluster;
  let redis: RedisClient;

  beforeAll(async () => {
    cluster = await startRedisCluster({ replicas: 1 });
  });

  afterAll(async () => {
    for (const p of cluster?.processes ?? []) p.child.kill('SIGCONT');
    redis?.disconnect();
    await cluster?.stop();
  });

  it('waits for the replica of the volume’s master, and says so in one line when it does not answer', async () => {
    const { minReplicas: _default, ...target } = cluster.target;
    const config = parseConfig({
      volume: 'durable',
      source: 'src',
      regions: { src: { store: 'memory://durable', redis: { ...target, replicaTimeout: '500ms' } } },
    });
    const region = config.regions.src;
    if (!region) throw new Error('no region');
    // The default of a Cluster target: one replica.
    expect(replicaAcks(region.redis)).toEqual({ minReplicas: 1, timeoutMs: 500 });
    redis = connectRedis(region.redis);
    const meta = new Meta({ redis, volume: 'durable', replicas: replicaAcks(region.redis) });
    const file = (path: string) => ({ path, size: 0, mtime: 1, chunkSize: 1024, chunks: [] });
    // The replica of the master that serves the volume's slot, once it has synced.
    const master = await cluster.nodeOf(meta.keys.entries);
    const masterPort = Number(master.split(':')[1]);
    const replication = async () => String(await command(masterPort, ['INFO', 'replication']));
    await waitFor(async () => /slave0:.*state=online/.test(await replication()), 20_000, 'the replica online');
    const info = await replication();
    const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(info)?.[1]);
    const replica = cluster.processes.find((p) => p.port === replicaPort);
    if (!replica) throw new Error(`no replica process on port ${replicaPort}: ${info}`);
    await meta.commit([file('/a')]);

    // Frozen, it confirms nothing.
    replica.child.kill('SIGSTOP');
    try {
      const err = await meta.commit([file('/b')]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotDurableError);
      expect((err as Error).message).toMatch(
        /^commit of 1 file at version \d+-\d+: applied, but 0 of 1 replica confirmed it within 500 ms, so a failover now could lose it; running the command again is safe$/,
      );
    } finally {
      replica.child.kill('SIGCONT');
    }
    // Thawed, it catches up, and the next commit is acknowledged.
    await meta.commit([file('/c')]);
    expect(await meta.tryStat('/b')).toBeDefined();
  });
});
