// Scenario 3: metadata lag, from commit at the source to visible in the mirror, at several
// commit rates. The mirror's replicator runs as its own process, as in production.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { connectRedis, Meta } from '@ferry/meta';
import { Redis } from 'ioredis';
import { FERRY_BIN, freshDir, percentile, sleep, waitFor, writeConfig } from '../lib/util.mjs';

const ZERO_FILE = { size: 0, mtime: 0, chunkSize: 8 * 2 ** 20, chunks: [] };

async function lagAt({ work, redis, rate, seconds }) {
  const volume = `bench-lag-${rate}-${Date.now()}`;
  const config = writeConfig(join(work, `${volume}.yaml`), {
    volume,
    source: 'src',
    regions: {
      src: { store: `file://${freshDir(join(work, 'lag-src'))}`, redis: `${redis.url}/2` },
      eu: { store: `file://${freshDir(join(work, 'lag-eu'))}`, redis: `${redis.url}/3` },
    },
  });
  const child = spawn(process.execPath, [FERRY_BIN, 'replicator', '--region', 'eu', '--config', config], { stdio: 'ignore' });
  const sourceRedis = connectRedis(`${redis.url}/2`);
  const meta = new Meta({ redis: sourceRedis, volume });
  const mirror = new Redis(`${redis.url}/3`);
  const cursorKey = `ferry:{${volume}}:cursor`;
  try {
    await waitFor(async () => (await mirror.get(cursorKey)) !== null, 30_000, 'the mirror to sync');
    const committed = []; // [id, local ms at commit return]
    const visible = new Map();
    const deadline = Date.now() + (seconds + 30) * 1000;
    let watching = true;
    // Watch the mirror's cursor as closely as the machine allows; every record up to it is visible.
    const watcher = (async () => {
      let next = 0;
      while (watching || next < committed.length) {
        const cursor = await mirror.get(cursorKey);
        const now = performance.now();
        while (next < committed.length && cursor && compare(committed[next][0], cursor) <= 0) visible.set(next++, now);
        if (!watching && Date.now() > deadline) break;
        await sleep(1);
      }
    })();
    const total = rate * seconds;
    const interval = 1000 / rate;
    const started = performance.now();
    // Commits go out on schedule without waiting for each other (ioredis pipelines them), as many
    // writers would; each one's clock starts when its commit returns.
    const inflight = [];
    for (let i = 0; i < total; i++) {
      const due = started + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      inflight.push(
        meta.commit([{ ...ZERO_FILE, path: `/lag/f${i}` }]).then(({ version }) => committed.push([version, performance.now()])),
      );
    }
    await Promise.all(inflight);
    const achieved = total / ((performance.now() - started) / 1000);
    watching = false;
    await watcher;
    const lags = committed
      .map(([, at], i) => (visible.get(i) ?? Number.NaN) - at)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    return { achieved, lags, missing: total - lags.length };
  } finally {
    child.kill('SIGTERM');
    await meta.close();
    sourceRedis.disconnect();
    mirror.disconnect();
  }
}

function compare(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? Number(as - bs) : Number(am - bm);
}

export const metadataLag = {
  id: 'metadata-lag',
  title: 'Metadata lag: commit at the source → visible in the mirror',
  async run({ work, redis, size }) {
    const rows = [];
    const notes = [];
    for (const rate of [100, 500, 2000]) {
      const seconds = Math.max(1, Math.round(5 * size));
      const { achieved, lags, missing } = await lagAt({ work, redis, rate, seconds });
      for (const p of [50, 95, 99]) {
        rows.push({
          metric: `${rate} commits/s: p${p}`,
          unit: 'ms',
          ferry: percentile(lags, p),
          peer: 'target (design)',
          peerValue: 1000,
          ratio: 1000 / percentile(lags, p),
        });
      }
      notes.push(
        `${rate} commits/s asked, ${achieved.toFixed(0)} achieved by one committing client${missing ? `, ${missing} not seen` : ''}.`,
      );
    }
    notes.push('No peer replicates metadata this way; the ratio is against the 1 s design target (higher is better).');
    return { rows, notes };
  },
};
