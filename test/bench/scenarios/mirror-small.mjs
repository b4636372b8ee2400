// Scenario: a folder of many small files (20,000 of 20 bytes at size ×1), file:// → file://.
// Ferry: `ferry put` into the source, then a replicator started on an empty mirror (its resync,
// then the copies) until every chunk is present; and a replicator already running while the put
// commits, until the mirror is complete. Peers copy the same folder: `cp -r` + `sync` and
// `rclone copy --checksum`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  cpuSeconds,
  FERRY_BIN,
  freshDir,
  has,
  mustRun,
  settle,
  startReplicator,
  timedRun,
  waitFor,
  withoutCaBundle,
  writeConfig,
} from '../lib/util.mjs';

function writeFolder(dir, count) {
  freshDir(dir);
  for (let i = 0; i < count; i++) {
    const folder = join(dir, `part-${String(Math.floor(i / 1000)).padStart(3, '0')}`);
    if (i % 1000 === 0) mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `f-${i}.txt`), `small file ${String(i).padStart(8, '0')}\n`);
  }
}

/** Wait until the mirror's present set holds every chunk the source's entries name. */
async function untilComplete(source, mirror, volume, count) {
  await waitFor(
    async () => {
      const failed = await mirror.zrange(`{ferry:${volume}}:copy:failed`, 0, 0);
      if (failed[0]) throw new Error(`copy of ${failed[0]} failed`);
      return (await mirror.scard(`ferry:{${volume}}:present`)) >= count && (await source.hlen(`ferry:{${volume}}:entries`)) >= count;
    },
    600_000,
    'the mirror to complete',
    20,
  );
}

function config(work, redis, volume) {
  return writeConfig(join(work, `${volume}.yaml`), {
    volume,
    source: 'src',
    regions: {
      src: { store: `file://${freshDir(join(work, `${volume}-src`))}`, redis: `${redis.url}/0` },
      eu: { store: `file://${freshDir(join(work, `${volume}-eu`))}`, redis: `${redis.url}/1`, copy: { concurrency: 8 } },
    },
  });
}

export const mirrorSmall = {
  id: 'mirror-small',
  title: 'Mirror a folder of small files, file:// → file:// (files/s)',
  async run({ work, redis, size }) {
    const count = Math.max(1000, Math.round(20_000 * size));
    const folder = join(work, 'small');
    writeFolder(folder, count);
    const source = new Redis(`${redis.url}/0`);
    const mirror = new Redis(`${redis.url}/1`);
    const rows = [];
    const perSec = (ms) => count / (ms / 1000);
    try {
      // 1. put, then a new mirror catches up (resync from nothing, then every copy).
      await source.flushdb();
      await mirror.flushdb();
      const late = config(work, redis, `bench-small-late-${Date.now()}`);
      await settle();
      const put = await timedRun(process.execPath, [FERRY_BIN, 'put', folder, '/data/small', '--config', late, '--json']);
      const volumeLate = late.split('/').at(-1).replace('.yaml', '');
      await settle();
      const t0 = Date.now();
      const replicator = await startReplicator(late);
      const cpu0 = cpuSeconds(replicator.pid);
      await untilComplete(source, mirror, volumeLate, count);
      const catchUpMs = Date.now() - t0;
      const catchUpCpu = cpuSeconds(replicator.pid) - cpu0;
      await replicator.stop();

      // 2. a running, synced mirror follows a put.
      await source.flushdb();
      await mirror.flushdb();
      const live = config(work, redis, `bench-small-live-${Date.now()}`);
      const volumeLive = live.split('/').at(-1).replace('.yaml', '');
      const following = await startReplicator(live);
      await waitFor(async () => (await mirror.get(`ferry:{${volumeLive}}:cursor`)) !== null, 30_000, 'the mirror to sync');
      await settle();
      const t1 = Date.now();
      await mustRun(process.execPath, [FERRY_BIN, 'put', folder, '/data/small', '--config', live, '--json']);
      await untilComplete(source, mirror, volumeLive, count);
      const followMs = Date.now() - t1;
      await following.stop();

      await settle();
      const cp = await mustRun('sh', ['-c', `cp -r "${folder}" "${freshDir(join(work, 'small-cp'))}/" && sync`]);
      const rc = has('rclone')
        ? await mustRun('rclone', ['copy', '--checksum', folder, freshDir(join(work, 'small-rclone'))], { env: withoutCaBundle() })
        : undefined;
      const peers = [['cp -r + sync', cp.ms], ...(rc ? [['rclone copy --checksum', rc.ms]] : [])];
      const add = (metric, ms) => {
        for (const [peer, peerMs] of peers)
          rows.push({ metric, unit: 'files/s', ferry: perSec(ms), peer, peerValue: perSec(peerMs), ratio: perSec(ms) / perSec(peerMs) });
      };
      add(`ferry put of ${count} files`, put.ms);
      add(`a new mirror catches up (resync, then copies)`, catchUpMs);
      add(`put + a running mirror complete`, followMs);
      return {
        rows,
        notes: [
          `put: ${put.cpu.toFixed(1)} CPU s; the catching-up replicator: ${catchUpCpu.toFixed(1)} CPU s. Both stores fsync what they write; rclone and cp copy into the page cache (cp is followed by one sync).`,
          ...(rc ? [] : ['rclone is not installed']),
        ],
      };
    } finally {
      source.disconnect();
      mirror.disconnect();
    }
  },
};
