// Scenarios 1 and 2: mirror a model folder from the source region to a mirror region, timed from
// the commit to 100 % of chunks present (and verified) in the mirror, against peers copying the
// same bytes.
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  cpuSeconds,
  FERRY_BIN,
  freshDir,
  GiB,
  has,
  MiB,
  mustRun,
  rssEnv,
  settle,
  startReplicator,
  startS3rver,
  timedRun,
  waitFor,
  withoutCaBundle,
  writeConfig,
  writeRandomFile,
} from '../lib/util.mjs';

async function writeModel(dir, files, fileBytes) {
  freshDir(dir);
  for (let i = 0; i < files; i++) await writeRandomFile(join(dir, `model-${String(i + 1).padStart(5, '0')}.safetensors`), fileBytes);
}

/**
 * One Ferry mirror run: the replicator is up and synced first, then `ferry put` commits the
 * model; the clock runs from the commit's version time to the last chunk marked present (each
 * chunk was sha256-verified on its way into the mirror store).
 */
async function ferryMirror({ work, redis, volume, sourceStore, mirrorStore, model, env }) {
  const redisUrl = redis.url;
  const config = writeConfig(join(work, `${volume}.yaml`), {
    volume,
    chunkSize: '8MiB',
    source: 'src',
    regions: {
      src: { store: sourceStore, redis: `${redisUrl}/0` },
      eu: { store: mirrorStore, redis: `${redisUrl}/1`, copy: { concurrency: 8 } },
    },
  });
  const rssFile = join(work, `${volume}.replicator.rss`);
  const replicator = await startReplicator(config, rssEnv(rssFile, env));
  const mirror = new Redis(`${redisUrl}/1`);
  const source = new Redis(`${redisUrl}/0`);
  try {
    await waitFor(async () => (await mirror.get(`ferry:{${volume}}:cursor`)) !== null, 30_000, 'the mirror to sync');
    await settle();
    const replicatorCpu = cpuSeconds(replicator.pid);
    const put = await timedRun(process.execPath, [FERRY_BIN, 'put', model, '/models/bench', '--config', config, '--json'], { env });
    const summary = JSON.parse(put.stdout.trim().split('\n').at(-1));
    const committedAt = Number(summary.version.split('-')[0]);
    const chunkIds = new Set();
    for (const json of await source.hvals(`ferry:{${volume}}:entries`)) for (const c of JSON.parse(json).chunks) chunkIds.add(c.id);
    const ids = [...chunkIds];
    await waitFor(
      async () => {
        // A copy that failed for good will not complete by waiting: say why instead.
        const failed = await mirror.zrange(`{ferry:${volume}}:copy:failed`, 0, 0);
        if (failed[0])
          throw new Error(`copy of ${failed[0]} failed: ${await mirror.hget(`{ferry:${volume}}:copy:${failed[0]}`, 'failedReason')}`);
        return (await mirror.smismember(`ferry:{${volume}}:present`, ...ids)).every((f) => f === 1);
      },
      600_000,
      'the mirror to complete',
    );
    const ms = Date.now() - committedAt;
    // The put's CPU and the replicator's while it copied: every Ferry process on the path.
    const cpu = put.cpu + cpuSeconds(replicator.pid) - replicatorCpu;
    return { ms, bytes: summary.bytes, chunks: ids.length, cpuPerGiB: cpu / (summary.bytes / GiB) };
  } finally {
    mirror.disconnect();
    source.disconnect();
    await replicator.stop();
  }
}

function row(metric, ferryMs, bytes, peer, peerMs, cpu) {
  const ferry = bytes / MiB / (ferryMs / 1000);
  if (peerMs === undefined) return { metric, unit: 'MiB/s', ferry, cpu, peer, peerValue: null, ratio: null };
  const peerValue = bytes / MiB / (peerMs / 1000);
  return { metric, unit: 'MiB/s', ferry, cpu, peer, peerValue, ratio: ferry / peerValue };
}

export const mirrorFile = {
  id: 'mirror-file',
  title: 'Mirror a model folder, file:// → file:// (commit → 100 % present and verified)',
  async run({ work, redis, size }) {
    const files = Math.max(1, Math.round(64 * size));
    const model = join(work, 'model');
    await writeModel(model, files, 32 * MiB);
    const bytes = files * 32 * MiB;
    const volume = `bench-mirror-file-${Date.now()}`;
    const ferry = await ferryMirror({
      work,
      redis,
      volume,
      sourceStore: `file://${freshDir(join(work, 'src'))}`,
      mirrorStore: `file://${freshDir(join(work, 'eu'))}`,
      model,
      env: process.env,
    });
    await settle();
    const cp = await mustRun('sh', ['-c', `cp -r "${model}" "${freshDir(join(work, 'cp'))}/" && sync`]);
    const rows = [row(`${files} × 32 MiB`, ferry.ms, bytes, 'cp -r + sync', cp.ms, ferry.cpuPerGiB)];
    if (has('rclone')) {
      await settle();
      const rc = await mustRun('rclone', ['copy', '--checksum', model, freshDir(join(work, 'rclone'))], { env: withoutCaBundle() });
      rows.push(row(`${files} × 32 MiB`, ferry.ms, bytes, 'rclone copy --checksum', rc.ms, ferry.cpuPerGiB));
    } else rows.push({ metric: `${files} × 32 MiB`, peer: 'rclone copy --checksum', note: 'not available: rclone is not installed' });
    return {
      rows,
      notes: [
        `Ferry: ${ferry.chunks} chunks of 8 MiB, every one sha256-verified into the mirror store; stores fsync each chunk. CPU s/GiB: the put process and the replicator.`,
      ],
    };
  },
};

export const mirrorS3 = {
  id: 'mirror-s3',
  title: 'Mirror a model folder between two s3rver instances (commit → 100 % present)',
  async run({ work, redis, size }) {
    const files = Math.max(1, Math.round(16 * size));
    const model = join(work, 'model-s3');
    await writeModel(model, files, 32 * MiB);
    const bytes = files * 32 * MiB;
    const a = await startS3rver(freshDir(join(work, 's3a')), ['bench']);
    const b = await startS3rver(freshDir(join(work, 's3b')), ['bench']);
    const env = { ...withoutCaBundle(), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_EC2_METADATA_DISABLED: 'true' };
    const url = (endpoint, prefix) => `s3://bench/${prefix}?endpoint=${endpoint}&forcePathStyle=1&checksums=when_required&region=us-east-1`;
    try {
      const volume = `bench-mirror-s3-${Date.now()}`;
      const ferry = await ferryMirror({
        work,
        redis,
        volume,
        sourceStore: url(a.endpoint, 'ferry'),
        mirrorStore: url(b.endpoint, 'ferry'),
        model,
        env,
      });
      if (!has('rclone'))
        return {
          rows: [row(`${files} × 32 MiB`, ferry.ms, bytes, 'rclone copy s3a: s3b:', undefined, ferry.cpuPerGiB)],
          notes: ['rclone not installed'],
        };
      const remote = (name, endpoint) => [
        `RCLONE_CONFIG_${name}_TYPE=s3`,
        `RCLONE_CONFIG_${name}_PROVIDER=Other`,
        `RCLONE_CONFIG_${name}_ENDPOINT=${endpoint}`,
        `RCLONE_CONFIG_${name}_FORCE_PATH_STYLE=true`,
        `RCLONE_CONFIG_${name}_ACCESS_KEY_ID=S3RVER`,
        `RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY=S3RVER`,
      ];
      const rcEnv = {
        ...env,
        ...Object.fromEntries([...remote('S3A', a.endpoint), ...remote('S3B', b.endpoint)].map((kv) => kv.split(/=(.*)/s).slice(0, 2))),
      };
      await mustRun('rclone', ['copy', model, 's3a:bench/rclone', '--s3-upload-cutoff', '5G'], { env: rcEnv });
      const rc = await mustRun(
        'rclone',
        ['copy', 's3a:bench/rclone', 's3b:bench/rclone', '--s3-upload-cutoff', '5G', '--s3-copy-cutoff', '5G'],
        { env: rcEnv },
      );
      return {
        rows: [row(`${files} × 32 MiB`, ferry.ms, bytes, 'rclone copy s3a: s3b:', rc.ms, ferry.cpuPerGiB)],
        notes: ['Both sides are s3rver (single-threaded, md5 of every byte): this measures the stand-in servers as much as the clients.'],
      };
    } finally {
      await a.stop();
      await b.stop();
    }
  },
};
