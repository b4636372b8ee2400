// Scenario 4: import throughput in objects/s — a first import and a re-import with 1 % changed —
// against `rclone lsf -R` of the same origin (just listing it: the floor any import pays).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { FERRY_BIN, freshDir, has, mustRun, startS3rver, withoutCaBundle, writeConfig } from '../lib/util.mjs';

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
      regions: { src: { store: `file://${freshDir(join(work, 'import-src'))}`, redis: `${redis.url}/12` } },
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
