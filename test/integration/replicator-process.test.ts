import { randomBytes, randomInt } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CopyQueue } from '@ferry/jobs';
import { describe, expect, it } from 'vitest';
import { COPY_QUEUE } from '../support/defaults.js';
import {
  type Daemon,
  differences,
  KiB,
  MiB,
  putBytes,
  type Regions,
  runCli,
  sleep,
  verifyMirrorChunks,
  waitFor,
  waitForConvergence,
} from '../support/regions.js';
import { useRegions } from '../support/scope.js';
import { freePort } from '../support/servers/free-port.js';

/*
 * Acceptance 3 and 10: the daemon as it runs in production, `ferry replicator --region eu` in a
 * process of its own (built CLI), killed with SIGKILL at random points while the source keeps
 * changing, and stopped with SIGTERM.
 */

const scope = useRegions();

function daemon(r: Regions, tag: string): Daemon {
  return scope.daemon(r, 'eu', { tag });
}

async function started(d: Daemon): Promise<void> {
  await waitFor(async () => (await d.output()).includes('replicator started'), 20_000, `daemon ${d.log} to start`, 20).catch(
    async (err) => {
      throw new Error(`${(err as Error).message}\n${(await d.output()).slice(-2000)}`);
    },
  );
}

/**
 * Random changes at the source until stopped: new files, overwrites, renames and deletes of files
 * and directories under /w, and now and then a model-sized file under /models that stays.
 */
function sourceWorkload(r: Regions): { stop(): Promise<void>; counts: Record<string, number> } {
  const counts: Record<string, number> = { put: 0, overwrite: 0, renameFile: 0, renameDir: 0, deleteFile: 0, deleteDir: 0 };
  const meta = r.source.meta;
  const reused: Buffer[] = [];
  let n = 0;
  let running = true;
  const bytes = () => {
    if (reused.length > 0 && randomInt(10) === 0) return reused[randomInt(reused.length)] as Buffer; // same content twice: shared chunks
    const b = randomInt(12) === 0 ? Buffer.alloc(0) : randomBytes(randomInt(1, 700 * KiB));
    if (reused.length < 20) reused.push(b);
    return b;
  };
  let lastBig = Date.now();
  const loop = (async () => {
    while (running) {
      if (Date.now() - lastBig > 1500) {
        // Now and then a model-sized file, so copies are under way most of the time.
        lastBig = Date.now();
        await putBytes(r, { [`/models/big${n++}.safetensors`]: randomBytes(randomInt(4, 8) * MiB) });
        counts.put = (counts.put ?? 0) + 1;
      }
      const files = (await meta.list('/w', { recursive: true }).catch(() => ({ items: [] }))).items.flatMap((i) =>
        i.kind === 'file' ? [i.entry.path] : [],
      );
      const pick = () => files[randomInt(files.length)] as string;
      const op = files.length < 8 ? 0 : randomInt(10);
      n += 1;
      if (op <= 3) {
        await putBytes(r, { [`/w/d${randomInt(4)}/f${n}`]: bytes() });
        counts.put = (counts.put ?? 0) + 1;
      } else if (op === 4) {
        await putBytes(r, { [pick()]: bytes() });
        counts.overwrite = (counts.overwrite ?? 0) + 1;
      } else if (op === 5) {
        await meta.rename(pick(), `/w/d${randomInt(4)}/moved${n}`);
        counts.renameFile = (counts.renameFile ?? 0) + 1;
      } else if (op === 6) {
        const dir = pick().split('/').slice(0, 3).join('/'); // /w/dX…
        await meta.rename(dir, `/w/d${randomInt(4)}x${n}`);
        counts.renameDir = (counts.renameDir ?? 0) + 1;
      } else if (op <= 8) {
        await meta.delete(pick());
        counts.deleteFile = (counts.deleteFile ?? 0) + 1;
      } else {
        const dir = pick().split('/').slice(0, 3).join('/');
        if (files.filter((f) => f.startsWith(`${dir}/`)).length < files.length / 2) {
          await meta.delete(dir, { recursive: true });
          counts.deleteDir = (counts.deleteDir ?? 0) + 1;
        }
      }
      await sleep(randomInt(15, 60));
    }
  })();
  return {
    counts,
    async stop() {
      running = false;
      await loop;
    },
  };
}

describe('the replicator daemon as a process', () => {
  it('converges after kill -9 at 5 random points while the source keeps changing: nothing lost, nothing twice, every chunk verified', async () => {
    // Copies are throttled so there is always a backlog for a kill to interrupt.
    const regions = await scope.regions({
      chunkSize: 256 * KiB,
      mirrors: { eu: { copy: { bytesPerSecond: 16 * MiB, concurrency: 8 } } },
      replicator: { leaseTtl: '5s' },
    });
    const r = regions;
    const initial: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) initial[`/w/d${i % 4}/model-${i}.safetensors`] = randomBytes(4 * MiB + i * 999);
    await putBytes(r, initial);
    const workload = sourceWorkload(r);
    const kills: string[] = [];
    let last: Daemon | undefined;
    try {
      const m = r.mirror('eu');
      const copies = new CopyQueue({ connection: m.redis, volume: r.volume, ...COPY_QUEUE });
      scope.defer(() => copies.close());
      const progress = async () => `${await m.mirror.cursor()} ${await m.redis.scard(m.meta.keys.present)}`;
      for (let k = 0; k < 5; k++) {
        const d = daemon(r, `kill${k}`);
        const t0 = Date.now();
        await started(d);
        // A restarted daemon waits out its predecessor's lease (5 s) before it leads: kill it only
        // once it is replicating (cursor or copies moving), then at a random point.
        const before = await progress();
        await waitFor(async () => (await progress()) !== before, 30_000, 'the restarted daemon to make progress', 20);
        const wait = randomInt(0, 1000);
        await sleep(wait);
        // Every other kill lands while chunks are being copied.
        if (k % 2 === 0) await waitFor(async () => (await copies.queue.getActiveCount()) > 0, 20_000, 'a copy to be under way', 5);
        const state = `${await progress()} ${await copies.queue.getActiveCount()}`;
        await d.kill9();
        kills.push(`${Date.now() - t0} ms after start (cursor, chunks present, copies active: ${state})`);
      }
      last = daemon(r, 'final');
      await started(last);
      await sleep(1000);
    } finally {
      await workload.stop();
    }
    const final = last as Daemon;
    try {
      // Copies the killed daemons held are taken up again once their locks expire (10 s), not
      // after BullMQ's default 30 s lock and 30 s stalled check (about a minute here).
      await waitForConvergence(r, 'eu', 45_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${(await final.output()).slice(-3000)}`);
    }
    // Where the kills landed, for a failure to be reproducible.
    expect(await differences(r, 'eu'), `kill -9 at: ${kills.join('; ')}`).toEqual([]);
    const verified = await verifyMirrorChunks(r, 'eu');
    expect(verified).toBeGreaterThan(0);
    expect(await r.mirror('eu').redis.hlen(r.mirror('eu').meta.keys.entries)).toBeGreaterThan(0);
    const bounds = await r.source.meta.log.logBounds();
    expect((await r.source.meta.log.acks(['eu'])).eu).toBe(bounds.last);
    const stopped = await final.terminate();
    expect(stopped.code, await final.output()).toBe(0);
  });

  it('exits 0 within a few seconds of SIGTERM, mid-copy, and a restart completes the mirror', async () => {
    const regions = await scope.regions({ chunkSize: 256 * KiB, mirrors: { eu: { copy: { bytesPerSecond: 4 * MiB } } } });
    const r = regions;
    await putBytes(r, { '/s/a.bin': randomBytes(12 * MiB), '/s/b.bin': randomBytes(4 * MiB) });
    const d = daemon(r, 'sigterm');
    await started(d);
    const m = r.mirror('eu');
    await waitFor(async () => (await m.redis.scard(m.meta.keys.present)) >= 4, 20_000, 'copies to start');
    const result = await d.terminate();
    expect(result.code, await d.output()).toBe(0);
    expect(result.signal).toBeNull();
    expect(result.ms).toBeLessThan(5_000);
    expect((await differences(r, 'eu')).some((p) => p.includes('not present'))).toBe(true);

    const again = daemon(r, 'restart');
    await started(again);
    await waitForConvergence(r, 'eu', 30_000);
    await verifyMirrorChunks(r, 'eu');
    expect((await again.terminate()).code).toBe(0);
  });

  it('two daemons of one region: when the leader is killed, the other takes over within seconds', async () => {
    const regions = await scope.regions({ chunkSize: 256 * KiB, replicator: { leaseTtl: '5s' } });
    const r = regions;
    const one = daemon(r, 'replica1');
    const two = daemon(r, 'replica2');
    await Promise.all([started(one), started(two)]);
    await putBytes(r, { '/h/first': randomBytes(300 * KiB) });
    await waitForConvergence(r, 'eu', 20_000);
    const leads = async (d: Daemon) => (await d.output()).includes('watcher leads in this region');
    const leaders = [];
    for (const d of [one, two]) if (await leads(d)) leaders.push(d);
    expect(leaders).toHaveLength(1);
    const [leader, other] = leaders[0] === one ? [one, two] : [two, one];
    await leader.kill9();
    await putBytes(r, { '/h/after-crash': randomBytes(300 * KiB) });
    // The lease (5 s by default) runs out, the other replica takes it and catches up.
    await waitFor(
      async () => (await r.mirror('eu').meta.tryStat('/h/after-crash')) !== undefined,
      10_000,
      'the other replica to take over',
    );
    expect(await leads(other)).toBe(true);
    await waitForConvergence(r, 'eu', 20_000);
    expect((await other.terminate()).code).toBe(0);
  });

  it('fails to start with one line and a non-zero exit when Redis cannot be reached, instead of hanging', async () => {
    const regions = await scope.regions();
    const port = await freePort();
    const doc = JSON.parse(await readFile(regions.configPath, 'utf8'));
    for (const region of Object.values(doc.regions) as Array<{ redis: string }>) region.redis = region.redis.replace(/:\d+\//, `:${port}/`);
    const path = join(regions.dir, 'unreachable.yaml');
    await writeFile(path, JSON.stringify(doc));
    const started = Date.now();
    const result = await runCli(['replicator', '--region', 'eu', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(`ferry: cannot reach Redis at redis://127.0.0.1:${port}/2: connection refused`);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
