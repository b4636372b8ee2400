// Scenario: cost curves against the number of files. For each N (10⁴, 10⁵; 10⁶ with --size 10):
// N files committed at the source (metadata of one-chunk files written with the library's bounded
// commits; they share 1,000 chunks, so the copies stay few and what grows is the metadata), a
// mirror's replicator (its own process) to complete, its idle CPU and Redis's, a resync of the
// mirror from nothing, `ferry ls -R`, `ferry status`, `ferry verify --sample`, `ferry rm -R`
// and a gc pass; with Redis memory per file and the slowest Redis command of each phase (SLOWLOG).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chunkKey, nativeChunkId, sha256Hex } from '@ferry/core';
import { connectRedis, Meta } from '@ferry/meta';
import { createStore } from '@ferry/stores';
import { Redis } from 'ioredis';
import { cpuSeconds, FERRY_BIN, freshDir, mustRun, sleep, waitFor, writeConfig } from '../lib/util.mjs';

const SHARED_CHUNKS = 1000;
const STEP = 5000;

/** The shared chunks: 16 bytes each, named by their sha256. */
function sharedChunks() {
  return Array.from({ length: SHARED_CHUNKS }, (_, i) => {
    const bytes = Buffer.from(`chunk ${String(i).padStart(10, '0')}`);
    const sha256 = sha256Hex(bytes);
    return { id: nativeChunkId(sha256), sha256, bytes };
  });
}

/** Peak resident set of a live process, MiB (VmHWM). */
function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The slowest command SLOWLOG kept since the last reset, ms, and its name. */
async function slowest(admin) {
  const log = await admin.call('SLOWLOG', 'GET', '1000');
  let worst = { ms: 0, command: '–' };
  for (const [, , us, args] of log) {
    const command = String(args[0]).toLowerCase();
    // The harness's own commands (reading the log, emptying the mirror) are not Ferry's.
    if (['slowlog', 'flushdb', 'flushall', 'config', 'info'].includes(command)) continue;
    if (us / 1000 > worst.ms) worst = { ms: us / 1000, command };
  }
  await admin.call('SLOWLOG', 'RESET');
  return worst;
}

async function scaleAt({ work, redis, count }) {
  const volume = `scale-${count}`;
  const dbs = { src: 4, eu: 5 };
  const srcDir = freshDir(join(work, `${count}-src`));
  const config = writeConfig(join(work, `${volume}.yaml`), {
    volume,
    source: 'src',
    regions: {
      src: { store: `file://${srcDir}`, redis: `${redis.url}/${dbs.src}`, gc: { grace: '0s' } },
      eu: {
        store: `file://${freshDir(join(work, `${count}-eu`))}`,
        redis: `${redis.url}/${dbs.eu}`,
        gc: { grace: '0s' },
        copy: { reconcileEvery: '5s' },
      },
    },
  });
  const admin = new Redis(redis.url);
  await admin.call('FLUSHALL');
  await admin.call('CONFIG', 'SET', 'slowlog-log-slower-than', '1000');
  await admin.call('CONFIG', 'SET', 'slowlog-max-len', '1000');
  await admin.call('SLOWLOG', 'RESET');
  const redisPid = Number(/process_id:(\d+)/.exec(await admin.info('server'))?.[1]);
  const memoryBefore = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
  const source = connectRedis(`${redis.url}/${dbs.src}`);
  const meta = new Meta({ redis: source, volume });
  const mirror = new Redis(`${redis.url}/${dbs.eu}`);
  const rows = [];
  const phase = async (name, fn, extra = {}) => {
    const started = performance.now();
    const out = await fn();
    const ms = performance.now() - started;
    const slow = await slowest(admin);
    rows.push({ n: count, phase: name, seconds: ms / 1000, slowestMs: slow.ms, slowestCommand: slow.command, ...extra, ...(out ?? {}) });
  };
  const chunks = sharedChunks();
  // The shared chunks are in the source store, so the mirror really copies them.
  const store = createStore(`file://${srcDir}`);
  for (const c of chunks) await store.put(chunkKey(c.id), c.bytes);
  let replicator;
  const startReplicator = () => {
    replicator = spawn(process.execPath, [FERRY_BIN, 'replicator', '--region', 'eu', '--config', config], { stdio: 'ignore' });
    return replicator;
  };
  const complete = async (timeoutMs) => {
    const last = (await meta.log.logBounds()).last;
    await waitFor(
      async () => (await mirror.get(`ferry:{${volume}}:cursor`)) === last && (await mirror.scard(`ferry:{${volume}}:missing`)) === 0,
      timeoutMs,
      `mirror of ${count} files to complete`,
      200,
    );
  };
  const ferry = (args) => mustRun(process.execPath, [FERRY_BIN, ...args, '--config', config], { maxBuffer: 1 << 30 });
  try {
    await phase('commit at the source (bounded steps)', async () => {
      for (let i = 0; i < count; i += STEP) {
        const entries = [];
        for (let j = i; j < Math.min(count, i + STEP); j++) {
          const c = chunks[j % SHARED_CHUNKS];
          entries.push({
            path: `/scale/d${String(j % 100).padStart(2, '0')}/f${String(j).padStart(7, '0')}.json`,
            size: c.bytes.length,
            mtime: 1,
            sha256: c.sha256,
            chunkSize: 8 * 2 ** 20,
            chunks: [{ id: c.id, size: c.bytes.length }],
          });
        }
        await meta.commit(entries);
      }
    });
    const memoryAfter = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
    rows.at(-1).redisBytesPerFile = (memoryAfter - memoryBefore) / count;

    await phase('mirror to complete (replicator from start)', async () => {
      startReplicator();
      await complete(600_000 + count);
      return { replicatorPeakRssMiB: peakRss(replicator.pid) };
    });
    // Settled first: a replicator walks everything once after it starts; idle is what follows.
    await sleep(15_000);
    await slowest(admin);
    const idle = 30;
    const before = { r: cpuSeconds(replicator.pid), redis: cpuSeconds(redisPid) };
    await sleep(idle * 1000);
    rows.push({
      n: count,
      phase: `idle, ${idle} s`,
      replicatorCpuPercent: ((cpuSeconds(replicator.pid) - before.r) / idle) * 100,
      redisCpuPercent: ((cpuSeconds(redisPid) - before.redis) / idle) * 100,
      ...(await slowest(admin).then((s) => ({ slowestMs: s.ms, slowestCommand: s.command }))),
    });
    replicator.kill('SIGTERM');
    await new Promise((r) => replicator.once('exit', r));

    await mirror.flushdb();
    await slowest(admin);
    await phase('resync of the mirror from nothing', async () => {
      startReplicator();
      await complete(600_000 + count);
    });
    await phase('ferry ls -R /scale', async () => {
      const out = await ferry(['ls', '-R', '/scale']);
      return { lines: out.stdout.split('\n').length - 1 };
    });
    await phase('ferry status', () => ferry(['status']).then(() => undefined));
    await phase('ferry verify --sample 1 (eu)', () => ferry(['verify', '--region', 'eu', '--sample', '1']).then(() => undefined));
    await phase('ferry rm -R /scale, the mirror following', async () => {
      await ferry(['rm', '-R', '/scale']);
      await complete(600_000 + count);
    });
    await phase('ferry gc (source)', () => ferry(['gc', '--grace', '0s']).then(() => undefined));
  } finally {
    replicator?.kill('SIGTERM');
    await meta.close();
    source.disconnect();
    mirror.disconnect();
    await admin.call('CONFIG', 'SET', 'slowlog-log-slower-than', '10000').catch(() => {});
    admin.disconnect();
  }
  return rows;
}

export const scale = {
  id: 'scale',
  title: 'Scale: cost of each phase against the number of files (10⁴, 10⁵; 10⁶ with --size 10)',
  async run({ work, redis, size }) {
    const counts = [10_000, 100_000, ...(size >= 10 ? [1_000_000] : [])].map((n) => (size < 1 ? Math.round(n * size) : n));
    const rows = [];
    const notes = [];
    for (const count of counts) {
      for (const r of await scaleAt({ work, redis, count })) {
        const extra = Object.entries(r)
          .filter(([k]) => !['n', 'phase', 'seconds', 'slowestMs', 'slowestCommand'].includes(k))
          .map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(1) : v}`)
          .join(', ');
        notes.push(
          `${r.n} files · ${r.phase}: ${r.seconds === undefined ? '' : `${r.seconds.toFixed(1)} s, `}slowest Redis command ${r.slowestMs.toFixed(1)} ms (${r.slowestCommand})${extra ? `, ${extra}` : ''}`,
        );
        if (r.seconds !== undefined)
          rows.push({
            metric: `${r.n} files: ${r.phase} (slowest Redis command ${r.slowestMs.toFixed(1)} ms)`,
            unit: 's',
            ferry: r.seconds,
            peer: null,
            peerValue: null,
            ratio: null,
          });
      }
    }
    notes.push(
      'The files are one-chunk files over 1,000 shared chunks of 16 bytes, committed with the library (its bounded steps); the phases after it are whole `ferry` processes or the replicator.',
    );
    return { rows, notes };
  },
};
