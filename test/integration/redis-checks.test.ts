import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runFerry, spawnFerry, writeFerryConfig } from '../support/cli.js';
import { uniqueName } from '../support/random.js';
import { freePort } from '../support/servers/free-port.js';
import { type RedisProcess, spawnRedis } from '../support/servers/redis-process.js';

/*
 * What a process does with the Redis it is given, before any work: an evicting Redis is refused
 * in one line, one that persists nothing is a warning in a service's log, and an unreachable
 * Sentinel or Cluster is one line that never shows the password.
 */
describe('the Redis checks every process makes at start', () => {
  let dir: string;
  let evicting: RedisProcess;
  let volatile: RedisProcess;
  let plain: RedisProcess;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-redis-checks-'));
    const none = ['--save', '', '--appendonly', 'no'];
    [evicting, volatile, plain] = await Promise.all([
      freePort().then((port) => spawnRedis(dir, port, [...none, '--maxmemory-policy', 'allkeys-lru'])),
      freePort().then((port) => spawnRedis(dir, port, [...none, '--maxmemory', '512mb', '--maxmemory-policy', 'volatile-lru'])),
      freePort().then((port) => spawnRedis(dir, port, none)),
    ]);
  });

  afterAll(async () => {
    await Promise.allSettled([evicting?.stop(), volatile?.stop(), plain?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const config = (redis: unknown) =>
    writeFerryConfig(
      dir,
      { volume: uniqueName('chk'), source: 'src', regions: { src: { store: `file://${dir}/store`, redis } } } as never,
      `${uniqueName('cfg')}.yaml`,
    );

  it.each([
    ['allkeys-lru', () => evicting],
    ['volatile-lru', () => volatile],
  ])('refuses a Redis with maxmemory-policy %s in one line, saying why', async (policy, server) => {
    const path = await config(`redis://127.0.0.1:${server().port}/0`);
    const ls = await runFerry(['ls', '/', '--config', path]);
    expectOneLineError(
      ls,
      2,
      `Redis at redis://127.0.0.1:${server().port}/0 has maxmemory-policy ${policy}: Ferry needs noeviction, because an evicted key is a lost file`,
    );
    const daemon = await runFerry(['replicator', '--region', 'src', '--config', path], { timeoutMs: 30_000 });
    expect(daemon.code).toBe(2);
    expect(daemon.stderr).toContain(`has maxmemory-policy ${policy}: Ferry needs noeviction`);
  });

  it('accepts a Redis that persists nothing, and a service says so in its log', async () => {
    const path = await config(`redis://127.0.0.1:${plain.port}/0`);
    const ls = await runFerry(['ls', '/', '--config', path]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stderr).toBe('');
    // The replicator is a service: it logs the warning and runs.
    const daemon = spawnFerry(['replicator', '--region', 'src', '--config', path], { env: { FERRY_LOG_LEVEL: 'info' }, timeoutMs: 30_000 });
    const logged: string[] = [];
    // Started, or gone (then the assertions below say what it printed).
    await Promise.race([
      new Promise<void>((resolve) =>
        daemon.onLine((line) => {
          logged.push(line);
          if (line.includes('replicator started')) resolve();
        }),
      ),
      daemon.result,
    ]);
    const warning = logged.find((line) => line.includes('persists nothing')) ?? '{}';
    // Its log said it started: it ran with that Redis (how it stops is another test's concern;
    // the signal may come before its handler is installed).
    expect(
      logged.some((line) => line.includes('replicator started')),
      logged.join('\n'),
    ).toBe(true);
    daemon.child.kill('SIGTERM');
    await daemon.result;
    expect(JSON.parse(warning)).toMatchObject({
      level: 40,
      msg: `Redis at redis://127.0.0.1:${plain.port}/0 persists nothing (no AOF, no RDB snapshots): a restart loses this region's metadata and queues`,
    });
  });

  it('an unreachable Sentinel or Cluster is one line naming it, never its password', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const sentinel = await config({ sentinels: [`127.0.0.1:${a}`, `127.0.0.1:${b}`], name: 'mymaster', password: 'hunter2-secret' });
    const line = expectOneLineError(await runFerry(['ls', '/', '--config', sentinel], { timeoutMs: 30_000 }), 1);
    expect(line).toContain(`cannot reach Redis at sentinels 127.0.0.1:${a},127.0.0.1:${b} (master mymaster, db 0): `);
    expect(line).not.toContain('hunter2');
    const cluster = await config({ cluster: [`127.0.0.1:${a}`], password: 'hunter2-secret' });
    const clusterLine = expectOneLineError(await runFerry(['ls', '/', '--config', cluster], { timeoutMs: 30_000 }), 1);
    expect(clusterLine).toContain(`cannot reach Redis at cluster 127.0.0.1:${a}: `);
    expect(clusterLine).not.toContain('hunter2');
  });
});
