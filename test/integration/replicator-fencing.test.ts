import { randomBytes } from 'node:crypto';
import { metricValue } from '@ferry/cache';
import { describe, expect, it } from 'vitest';
import { type Daemon, differences, KiB, putBytes, verifyMirrorChunks, waitFor, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';
import { freePort } from '../support/servers/free-port.js';

/*
 * Two replicas of a mirror's daemon as processes. The leader is frozen (SIGSTOP) past its lease,
 * the other takes over and carries on; when the old leader is resumed it acts on what it read
 * before it froze, and its first write is refused by the fencing token: it counts it, steps down,
 * and the mirror still equals the source.
 */

const scope = useRegions();

interface Replica {
  daemon: Daemon;
  api: string;
}

describe('fencing', () => {
  it('a leader frozen past its lease is replaced; resumed, its first write is refused (counted) and it steps down; the mirror equals the source', async () => {
    const token = randomBytes(16).toString('hex');
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: { api: { token } } }, replicator: { leaseTtl: '2s' } });
    const r = regions;
    const replicas: Replica[] = [];
    for (const tag of ['one', 'two']) {
      const port = await freePort();
      const daemon = scope.daemon(r, 'eu', { tag, args: ['--listen', `127.0.0.1:${port}`] });
      replicas.push({ daemon, api: `http://127.0.0.1:${port}` });
    }
    for (const { daemon } of replicas) {
      await waitFor(async () => (await daemon.output()).includes('replicator started'), 20_000, 'a daemon to start', 20);
    }
    const metric = async (replica: Replica, name: string) => {
      const res = await fetch(`${replica.api}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      return metricValue(await res.text(), name) ?? 0;
    };
    const leads = async (replica: Replica) => (await metric(replica, 'ferry_replicator_leader')) === 1;
    await putBytes(r, { '/f/first': randomBytes(100 * KiB) });
    await waitForConvergence(r, 'eu', 20_000);

    // The old leader is frozen while blocked in its read of the log (where an idle watcher spends
    // nearly all its time); if it happened to be frozen elsewhere, it finds the lease gone when it
    // renews and steps down without writing. Then the roles swap and the freeze is tried again.
    let refused = false;
    for (let attempt = 0; attempt < 3 && !refused; attempt++) {
      let leader: Replica | undefined;
      await waitFor(
        async () => {
          const flags = await Promise.all(replicas.map(leads));
          leader = flags.filter(Boolean).length === 1 ? replicas[flags.indexOf(true)] : undefined;
          return leader !== undefined;
        },
        15_000,
        'exactly one leader',
        50,
      );
      const old = leader as Replica;
      const successor = replicas.find((x) => x !== old) as Replica;
      const before = await metric(old, 'ferry_replicator_fenced_writes_total');
      old.daemon.child.kill('SIGSTOP');
      try {
        // Records the frozen leader's pending read will return when it is resumed.
        await putBytes(r, { [`/f/during-${attempt}`]: randomBytes(70 * KiB) });
        await waitFor(() => leads(successor), 10_000, 'the other replica to take over', 50);
        await waitFor(
          async () => (await r.mirror('eu').meta.tryStat(`/f/during-${attempt}`)) !== undefined,
          10_000,
          'the new leader to apply the change',
        );
        await putBytes(r, { [`/f/after-${attempt}`]: randomBytes(30 * KiB) });
      } finally {
        old.daemon.child.kill('SIGCONT');
      }
      await waitFor(async () => !(await leads(old)), 10_000, 'the resumed replica to step down', 50);
      refused = (await metric(old, 'ferry_replicator_fenced_writes_total')) > before;
      expect(await leads(successor)).toBe(true);
    }
    expect(refused, 'a resumed leader had a write refused').toBe(true);
    const logs = (await Promise.all(replicas.map((x) => x.daemon.output()))).join('\n');
    expect(logs).toContain('a write was refused: another replica took the lease; stepping down');
    await waitForConvergence(r, 'eu', 20_000);
    expect(await differences(r, 'eu')).toEqual([]);
    await verifyMirrorChunks(r, 'eu');
    for (const { daemon } of replicas) expect((await daemon.terminate()).code).toBe(0);
  });
});
