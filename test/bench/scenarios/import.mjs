// Scenario 4: import throughput in objects/s — a first import and a re-import with 1 % changed —
// against `rclone lsf -R` of the same origin (just listing it: the floor any import pays). Then the
// imported file:// tree mirrored: a replicator started on an empty mirror region copies every
// object from the origin (each is an external chunk of its own), against `rclone copy --checksum`
// of the tree, and its idle CPU and Redis's once the mirror is complete.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import {
  cpuSeconds,
  FERRY_BIN,
  freshDir,
  has,
  mustRun,
  sleep,
  startReplicator,
  startS3rver,
  waitFor,
  withoutCaBundle,
  writeConfig,
} from '../lib/util.mjs';

const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_EC2_METADATA_DISABLED: 'true' };

/** `count` small objects in nested folders of a local directory. */
function writeTree(dir, count) {
  freshDir(dir);
  for (let i = 0; i < count; i++) {
    const folder = join(dir, `shard-${String(i % 100).padStart(3, '0')}`, `part-${String(Math.floor(i / 100) % 10)}`);
    if (i < 1000) mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `obj-${i}.bin`), `object ${i}\n`);
  }
}

async function ferryImport(config, url, env) {
  const result = await mustRun(process.execPath, [FERRY_BIN, 'import', url, '/imported', '--config', config, '--json'], { env });
  const summary = JSON.parse(result.stdout.trim().split('\n').at(-1));
  return { ...summary, wallMs: result.ms };
}

function rows(label, count, first, again, listMs, peer) {
  const perSec = (ms) => count / (ms / 1000);
  const floor = listMs === undefined ? null : perSec(listMs);
  const ratio = (v) => (floor === null ? null : v / floor);
  return [
    {
      metric: `${label}: first import of ${count} objects`,
      unit: 'objects/s',
      ferry: perSec(first.wallMs),
      peer,
      peerValue: floor,
      ratio: ratio(perSec(first.wallMs)),
    },
    {
      metric: `${label}: re-import, 1 % changed (${again.new + again.changed} written)`,
      unit: 'objects/s',
      ferry: perSec(again.wallMs),
      peer,
      peerValue: floor,
      ratio: ratio(perSec(again.wallMs)),
    },
  ];
}

export const importScenario = {
  id: 'import',
  title: 'Import: objects/s, first import and re-import with 1 % changed, vs rclone lsf -R',
  async run({ work, redis, size }) {
    const out = [];
    const notes = ['Times are whole `ferry import` processes (start-up included) against whole `rclone lsf -R` processes.'];

    // file:// origin
    const count = Math.max(1000, Math.round(100_000 * size));
    const origin = join(work, 'origin');
    writeTree(origin, count);
    const volume = `bench-import-${Date.now()}`;
    const config = writeConfig(join(work, `${volume}.yaml`), {
      volume,
      source: 'src',
      regions: {
        src: { store: `file://${freshDir(join(work, 'import-src'))}`, redis: `${redis.url}/12` },
        eu: { store: `file://${freshDir(join(work, 'import-eu'))}`, redis: `${redis.url}/14` },
      },
    });
    const first = await ferryImport(config, `file://${origin}`, process.env);
    for (let i = 0; i < count; i += 100)
      writeFileSync(
        join(origin, `shard-${String(i % 100).padStart(3, '0')}`, `part-${String(Math.floor(i / 100) % 10)}`, `obj-${i}.bin`),
        `changed ${i}\n`,
      );
    const again = await ferryImport(config, `file://${origin}`, process.env);
    const list = has('rclone') ? await mustRun('rclone', ['lsf', '-R', '--files-only', origin], { env: withoutCaBundle() }) : undefined;
    out.push(...rows('file://', count, first, again, list?.ms, 'rclone lsf -R (listing only)'));
    const mirrored = await mirrorImported({ work, redis, config, volume, count, origin });
    out.push(mirrored.row);
    notes.push(mirrored.note);

    // s3rver origin
    const s3count = Math.max(200, Math.round(10_000 * size));
    const s3 = await startS3rver(freshDir(join(work, 's3')), ['origin']);
    try {
      const client = new S3Client({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        requestChecksumCalculation: 'WHEN_REQUIRED',
      });
      const put = async (i, body) =>
        client.send(new PutObjectCommand({ Bucket: 'origin', Key: `models/shard-${i % 50}/obj-${i}.bin`, Body: body }));
      for (let i = 0; i < s3count; i += 16)
        await Promise.all(Array.from({ length: Math.min(16, s3count - i) }, (_, k) => put(i + k, `object ${i + k}\n`)));
      const s3volume = `${volume}-s3`;
      const s3config = writeConfig(join(work, `${s3volume}.yaml`), {
        volume: s3volume,
        source: 'src',
        regions: { src: { store: `file://${freshDir(join(work, 'import-s3-src'))}`, redis: `${redis.url}/13` } },
      });
      const url = `s3://origin/models?endpoint=${s3.endpoint}&forcePathStyle=1&checksums=when_required&region=us-east-1`;
      const env = withoutCaBundle(S3_ENV);
      const s3first = await ferryImport(s3config, url, env);
      for (let i = 0; i < s3count; i += 100) await put(i, `changed ${i}\n`);
      const s3again = await ferryImport(s3config, url, env);
      let s3list;
      if (has('rclone')) {
        const rc = {
          RCLONE_CONFIG_O_TYPE: 's3',
          RCLONE_CONFIG_O_PROVIDER: 'Other',
          RCLONE_CONFIG_O_ENDPOINT: s3.endpoint,
          RCLONE_CONFIG_O_FORCE_PATH_STYLE: 'true',
          RCLONE_CONFIG_O_ACCESS_KEY_ID: 'S3RVER',
          RCLONE_CONFIG_O_SECRET_ACCESS_KEY: 'S3RVER',
        };
        s3list = await mustRun('rclone', ['lsf', '-R', '--files-only', 'o:origin/models'], { env: withoutCaBundle({ ...S3_ENV, ...rc }) });
      }
      out.push(...rows('s3rver', s3count, s3first, s3again, s3list?.ms, 'rclone lsf -R (listing only)'));
      client.destroy();
    } finally {
      await s3.stop();
    }
    if (!has('rclone')) notes.push('rclone is not installed: no listing floor to compare with.');
    return { rows: out, notes };
  },
};

/** Seconds an idle replicator is watched, after a settling pause once its mirror is complete. */
const SETTLE_S = 20;
const IDLE_S = 60;

/** Start the mirror's replicator on the imported volume, time it to complete, then watch it idle. */
async function mirrorImported({ work, redis, config, volume, count, origin }) {
  const source = new Redis(`${redis.url}/12`);
  const mirror = new Redis(`${redis.url}/14`);
  const admin = new Redis(redis.url);
  const redisPid = Number(/process_id:(\d+)/.exec(await admin.info('server'))?.[1]);
  const started = performance.now();
  const replicator = await startReplicator(config);
  try {
    const last = (await source.xrevrange(`ferry:{${volume}}:log`, '+', '-', 'COUNT', 1))[0]?.[0];
    await waitFor(
      async () => (await mirror.get(`ferry:{${volume}}:cursor`)) === last && (await mirror.scard(`ferry:{${volume}}:missing`)) === 0,
      600_000 + count * 10,
      `mirror of ${count} imported objects to complete`,
      200,
    );
    const mirrorMs = performance.now() - started;
    const copyCpu = cpuSeconds(replicator.pid);
    await sleep(SETTLE_S * 1000);
    const before = { replicator: cpuSeconds(replicator.pid), redis: cpuSeconds(redisPid) };
    await sleep(IDLE_S * 1000);
    const idle = (pid, was) => ((cpuSeconds(pid) - was) / IDLE_S) * 100;
    const idleReplicator = idle(replicator.pid, before.replicator);
    const idleRedis = idle(redisPid, before.redis);
    const peer = has('rclone')
      ? await mustRun('rclone', ['copy', '--checksum', origin, freshDir(join(work, 'rclone-copy'))], { env: withoutCaBundle() })
      : undefined;
    const perSec = (ms) => count / (ms / 1000);
    return {
      row: {
        metric: `file://: a new mirror of the ${count} imported objects (start-up, resync and copies from the origin)`,
        unit: 'files/s',
        ferry: perSec(mirrorMs),
        peer: 'rclone copy --checksum of the tree',
        peerValue: peer ? perSec(peer.ms) : null,
        ratio: peer ? perSec(mirrorMs) / perSec(peer.ms) : null,
      },
      note: `Mirror of the imported tree: replicator ${copyCpu.toFixed(1)} CPU s to complete; then, ${SETTLE_S} s after, idle over ${IDLE_S} s: replicator ${idleReplicator.toFixed(2)} % of a core, Redis ${idleRedis.toFixed(2)} % (every region of the run's server).`,
    };
  } finally {
    await replicator.stop();
    source.disconnect();
    mirror.disconnect();
    admin.disconnect();
  }
}
