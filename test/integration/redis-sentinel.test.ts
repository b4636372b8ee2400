import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChunkId, sha256Hex } from '@ferry/core';
import { lastRedisError } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFerry, sha256File } from '../support/cli.js';
import {
  createRegions,
  type Daemon,
  differences,
  MiB,
  putBytes,
  type Regions,
  startDaemon,
  verifyMirrorChunks,
  waitFor,
} from '../support/regions.js';
import { type RunningSentinel, startRedisSentinel } from '../support/servers/redis-sentinel.js';

/*
 * Both regions on one Sentinel-managed pair (source in db 0, mirror in db 1; one master, one
 * replica, three sentinels), the mirror's replicator as a daemon process. The master is killed
 * (SIGKILL) while the mirror is copying a model: the sentinels promote the replica, every
 * connection (the watcher's blocking reads, the copy workers' BullMQ connections, the test's own)
 * moves to it, and the mirror ends up equal to the source with every chunk copied and verified,
 * and `ferry get` from the mirror reads the model back intact.
 */
describe('a Sentinel failover in the middle of replication', () => {
  let sentinel: RunningSentinel;
  let regions: Regions;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    regions = await createRegions({
      chunkSize: MiB,
      // After the failover the new master has no replica: this test is about the mirror, so the
      // source's commits do not wait for one (redis-sentinel-durability.test.ts is about that).
      source: { redis: { ...sentinel.target(0), minReplicas: 0 } },
      // 4 MiB/s: the 24 MiB model takes about 6 s to copy, so the failover lands in the middle.
      mirrors: { eu: { redis: sentinel.target(1), copy: { concurrency: 2, bytesPerSecond: 4 * MiB } } },
    });
  });

  afterAll(async () => {
    if (daemon && daemon.child.exitCode === null) await daemon.kill9();
    await regions?.close();
    await sentinel?.stop();
  });

  /** Differences between source and mirror; a failed read (a connection still moving) counts as not converged. */
  async function converged(): Promise<string[]> {
    try {
      return await differences(regions, 'eu');
    } catch (err) {
      return [`read failed: ${(err as Error).message}`];
    }
  }

  it('converges: the mirror equals the source and holds every chunk', async () => {
    daemon = startDaemon(regions, 'eu', { tag: 'sentinel' });
    const d = daemon;
    await waitFor(async () => (await d.output()).includes('replicator started'), 30_000, 'the replicator to start').catch(async (err) => {
      throw new Error(`${(err as Error).message}: ${(await d.output()).slice(-3000)}`);
    });

    const model = {
      '/models/a/model-00001-of-00002.safetensors': randomBytes(12 * MiB),
      '/models/a/model-00002-of-00002.safetensors': randomBytes(12 * MiB),
      '/models/a/config.json': Buffer.from('{"architectures":["Test"]}\n'),
    };
    const { entries } = await putBytes(regions, model);
    const chunks = entries.flatMap((e) => e.chunks.map((c) => c.id as ChunkId));
    // The commit is on the replica before the master dies: what is lost in a failover is the
    // writer's to retry, and this test is about the mirror.
    expect(await regions.source.redis.call('WAIT', 1, 5_000)).toBe(1);

    const mirror = regions.mirror('eu').mirror;
    await waitFor(
      async () => {
        const missing = (await mirror.missing(chunks)).length;
        return missing > 0 && missing < chunks.length - 4;
      },
      90_000,
      'the copy to be under way',
      50,
    );
    const old = await sentinel.master();
    await (await sentinel.masterProcess()).kill();
    const promoted = await sentinel.waitForNewMaster(old);
    expect(promoted).not.toBe(old);

    // The source keeps working through the new master: a second model, put after the failover.
    await waitFor(
      async () => (await regions.source.redis.ping().catch(() => 'down')) === 'PONG',
      90_000,
      'the source client to reach the new master',
      100,
    ).catch(async (err) => {
      // What the client was doing, for a failure that only a loaded machine shows.
      const client = regions.source.redis as { status?: string };
      const last = lastRedisError(regions.source.redis);
      throw new Error(
        `${(err as Error).message}: client ${client.status}, last error ${last?.message ?? 'none'}; sentinels say ${await sentinel.master().catch((e) => (e as Error).message)} (was ${old})`,
      );
    });
    await putBytes(regions, { '/models/b/model.safetensors': randomBytes(3 * MiB) });

    let last: string[] = [];
    await waitFor(
      async () => {
        last = await converged();
        return last.length === 0;
      },
      120_000,
      'the mirror to converge',
      200,
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}; still: ${last.slice(0, 5).join('; ')}\n${(await d.output()).slice(-3000)}`);
    });
    expect(await verifyMirrorChunks(regions, 'eu')).toBe(new Set([...chunks]).size + 3);

    // A reader of the mirror, through the sentinels to the new master: the model as it was put.
    const out = join(regions.dir, 'out');
    const get = await runFerry(['get', '/models/a', out, '--region', 'eu', '--json', '--config', regions.configPath]);
    expect(get.code, get.stderr).toBe(0);
    for (const [path, bytes] of Object.entries(model)) {
      expect(await sha256File(join(out, path.slice('/models/a/'.length))), path).toBe(sha256Hex(bytes));
    }

    const stopped = await d.terminate();
    expect(stopped.code, (await d.output()).slice(-3000)).toBe(0);
  });
});

describe('Sentinels and servers that require passwords', () => {
  let sentinel: RunningSentinel;
  let regions: Regions;

  beforeAll(async () => {
    sentinel = await startRedisSentinel({ password: 'server-secret', sentinelPassword: 'sentinel-secret' });
    regions = await createRegions({
      chunkSize: MiB,
      source: { redis: sentinel.target(0) },
      mirrors: { eu: { redis: sentinel.target(1) } },
    });
  });

  afterAll(async () => {
    await regions?.close();
    await sentinel?.stop();
  });

  it('a put and a read through the CLI find the master with both passwords, and say so in one line when the sentinel password is wrong', async () => {
    const bytes = randomBytes(3 * MiB + 17);
    await putBytes(regions, { '/auth/model.bin': bytes });
    const cat = await runFerry(['cat', '/auth/model.bin', '--config', regions.configPath]);
    expect(cat.code).toBe(0);
    expect(sha256Hex(cat.stdoutBytes)).toBe(sha256Hex(bytes));

    const wrong = join(regions.dir, 'wrong-sentinel-password.yaml');
    const config = JSON.parse(await readFile(regions.configPath, 'utf8'));
    config.regions.src.redis.sentinelPassword = 'not-the-password';
    await writeFile(wrong, JSON.stringify(config));
    const refused = await runFerry(['ls', '/auth', '--config', wrong]);
    expect(refused.code).not.toBe(0);
    const lines = String(refused.stderr).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ferry: .*sentinels .*(WRONGPASS|NOAUTH|password|All sentinels are unreachable)/i);
    expect(lines[0]).not.toContain('sentinel-secret');
    expect(lines[0]).not.toContain('not-the-password');
  });
});
