import { join } from 'node:path';
import type { Replicator } from '@ferry/replicator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../support/random.js';
import {
  createRegions,
  fileDigest,
  MiB,
  putLocal,
  type Regions,
  verifyMirrorChunks,
  waitForConvergence,
  writeRandomFile,
} from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';
import { s3Url, useS3Env } from '../support/s3.js';

/*
 * Acceptance 1: a 256 MiB model folder put at the source mirrors to 100 %, byte-identical, into a
 * file:// mirror and into an S3 mirror (s3rver). The mirror's copy is rebuilt from the mirror's own
 * metadata and store, and each chunk it holds is hashed again.
 */

const SHARDS = [90 * MiB + 123, 90 * MiB - 77, 76 * MiB - 46]; // 256 MiB in all, none a whole number of chunks
const MODEL = '/models/llm-256m';
const CHUNKS = SHARDS.reduce((n, size) => n + Math.ceil(size / (8 * MiB)), 0) + 1; // + config.json

describe('a 256 MiB model folder mirrors completely and byte-identical', () => {
  let regions: Regions;
  let restoreEnv: () => void;
  const digests = new Map<string, string>();
  const running: Replicator[] = [];

  beforeAll(async () => {
    restoreEnv = useS3Env();
    regions = await createRegions({ mirrors: { eu: {}, us: { store: s3Url(uniqueName('us')) } } });
    const local = join(regions.dir, 'model');
    for (const [i, size] of SHARDS.entries()) {
      const name = `model-0000${i + 1}-of-0000${SHARDS.length}.safetensors`;
      digests.set(`${MODEL}/${name}`, await writeRandomFile(join(local, name), size));
    }
    digests.set(`${MODEL}/config.json`, await writeRandomFile(join(local, 'config.json'), 321));
    const put = await putLocal(regions, local, MODEL);
    expect(put.bytes).toBe(256 * MiB + 321);
    expect(put.filesChanged).toBe(4);
  });

  afterAll(async () => {
    await Promise.allSettled(running.map((r) => r.stop()));
    await regions?.close();
    restoreEnv?.();
  });

  it.each([
    ['file → file', 'eu'],
    ['file → s3rver', 'us'],
  ])('%s', async (_name, region) => {
    const replicator = await startReplicator(regions, region);
    running.push(replicator);
    await waitForConvergence(regions, region, 120_000);
    const status = await replicator.status();
    expect(status.chunks).toEqual({ referenced: CHUNKS, present: CHUNKS, missing: 0, failing: 0 });
    expect(status.failures).toEqual([]);
    const mirror = regions.mirror(region);
    for (const [path, sha256] of digests) {
      expect(await fileDigest(mirror, path), path).toBe(sha256);
      expect((await mirror.meta.stat(path)).sha256).toBe(sha256);
    }
    expect(await verifyMirrorChunks(regions, region)).toBe(CHUNKS);
    const copied = (await replicator.metrics.bytesCopied.get()).values[0]?.value;
    expect(copied).toBe(256 * MiB + 321);
    await replicator.stop();
  });
});
