import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectRedis, Meta } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegions, type Regions, runCli } from '../support/regions.js';
import { type RunningSentinel, startRedisSentinel } from '../support/servers/redis-sentinel.js';
import { waitFor } from '../support/wait.mjs';

/*
 * "Acknowledged means durable" with a Sentinel-managed source: a put returns success only once a
 * replica has its commit (WAIT, `minReplicas` 1 by default). The replica is frozen (SIGSTOP), so a
 * put in that window cannot be confirmed: it exits non-zero and says why. Then the master is
 * killed (SIGKILL) and the thawed replica promoted: every put that exited 0 is there.
 */
describe('acknowledged puts survive a Sentinel failover', () => {
  let sentinel: RunningSentinel;
  let regions: Regions;

  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    regions = await createRegions({
      mirrors: {},
      source: { redis: { ...sentinel.target(0), replicaTimeout: '700ms' } },
    });
  });

  afterAll(async () => {
    for (const server of sentinel?.servers ?? []) server.child.kill('SIGCONT');
    await regions?.close();
    await sentinel?.stop();
  });

  async function put(name: string): Promise<{ code: number | null; stderr: string }> {
    const local = join(regions.dir, name);
    await writeFile(local, randomBytes(64 * 1024));
    return runCli(['put', local, `/d/${name}`, '--config', regions.configPath]);
  }

  it('a put the replica has not confirmed exits 1 in one line; after the failover every put that exited 0 is present', async () => {
    const acknowledged: string[] = [];
    for (const name of ['a.bin', 'b.bin']) {
      const result = await put(name);
      expect(result.code, result.stderr).toBe(0);
      acknowledged.push(name);
    }

    const master = await sentinel.masterProcess();
    const replica = sentinel.servers.find((s) => s !== master);
    if (!replica) throw new Error('no replica');
    replica.child.kill('SIGSTOP');
    const unconfirmed = await put('c.bin');
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toMatch(
      /^ferry: commit of 1 file at version \S+: applied, but 0 of 1 replica confirmed it within 700 ms, so a failover now could lose it; running the command again is safe\n$/,
    );

    const old = master.address;
    await master.kill();
    replica.child.kill('SIGCONT');
    await sentinel.waitForNewMaster(old, 60_000);

    // Read through the sentinels, from the promoted replica.
    const redis = connectRedis(sentinel.target(0), { name: 'durability-check' });
    try {
      const meta = new Meta({ redis, volume: regions.volume });
      await waitFor(async () => (await redis.ping().catch(() => 'down')) === 'PONG', 60_000, 'the new master to answer');
      for (const name of acknowledged) expect(await meta.tryStat(`/d/${name}`), name).toBeDefined();
      // The new master has no replica yet (the old one is dead): a put is applied, but not
      // confirmed, and says so, until a replica joins again.
      const alone = await put('d.bin');
      expect(alone.code).toBe(1);
      expect(alone.stderr).toMatch(/0 of 1 replica confirmed it/);
      expect(await meta.tryStat('/d/d.bin')).toBeDefined();
    } finally {
      redis.disconnect();
    }
  }, 180_000);
});
