// Scenario 6: N readers start on one cold model in a mirror at once (the mirror knows the files
// but holds none of their bytes yet). Naive readers would pull N × size from the source.
import { join } from 'node:path';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { FsStore } from '@ferry/stores';
import { drain, FERRY_BIN, freshDir, GiB, MiB, mustRun, writeConfig, writeRandomFile } from '../lib/util.mjs';

export const coldStart = {
  id: 'cold-start',
  title: 'Cold start: N concurrent readers of one cold model in a mirror',
  async run({ work, redis, size }) {
    const bytes = Math.max(64 * MiB, Math.round(GiB * size));
    const volume = `bench-cold-${Date.now()}`;
    const model = join(freshDir(join(work, 'cold-model')), 'model.safetensors');
    await writeRandomFile(model, bytes);
    const src = freshDir(join(work, 'cold-src'));
    const config = writeConfig(join(work, `${volume}.yaml`), {
      volume,
      source: 'src',
      regions: {
        src: { store: `file://${src}`, redis: `${redis.url}/6` },
        eu: { store: `file://${join(work, 'cold-eu')}`, redis: `${redis.url}/7` },
      },
    });
    await mustRun(process.execPath, [FERRY_BIN, 'put', model, '/m/model.safetensors', '--config', config]);
    const sourceRedis = connectRedis(`${redis.url}/6`);
    const mirrorRedis = connectRedis(`${redis.url}/7`);
    const source = new Meta({ redis: sourceRedis, volume });
    const mirrorMeta = new Meta({ redis: mirrorRedis, volume });
    await new MirrorMeta({ redis: mirrorRedis, volume }).apply(await source.readChanges('0-0'));
    const entry = await mirrorMeta.stat('/m/model.safetensors');
    const rows = [];
    try {
      for (const readers of [1, 4, 16]) {
        const reader = new RegionReader({
          meta: mirrorMeta,
          region: 'eu',
          store: new FsStore({ root: freshDir(join(work, `cold-eu-${readers}`)) }),
          source: { name: 'src', store: new FsStore({ root: src }) },
        });
        const started = performance.now();
        await Promise.all(Array.from({ length: readers }, () => drain(reader.stream(entry))));
        const ms = performance.now() - started;
        const fromSource = reader.chunks.stats.bytes['source:src'];
        rows.push({
          metric: `${readers} reader(s): bytes from source`,
          unit: 'GiB',
          ferry: fromSource / GiB,
          peer: 'naive (N × size)',
          peerValue: (readers * bytes) / GiB,
          ratio: (readers * bytes) / fromSource,
        });
        rows.push({ metric: `${readers} reader(s): wall time`, unit: 's', ferry: ms / 1000, peer: null, peerValue: null, ratio: null });
      }
    } finally {
      await source.close();
      sourceRedis.disconnect();
      mirrorRedis.disconnect();
    }
    return {
      rows,
      notes: [
        `One ${(bytes / GiB).toFixed(2)} GiB file; readers in one process share fetches (single-flight) and a 256 MiB memory cache. Ratio = bytes a naive client would pull / bytes Ferry pulled.`,
      ],
    };
  },
};
