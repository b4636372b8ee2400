import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectRedis, FOLDER_BATCH, volumeKeys } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { requireBuiltCli, sourceOnlyConfig, writeFerryConfig } from '../support/cli.js';
import { importSummary, runImportCli, writeTinyFiles } from '../support/import.js';
import { uniqueName } from '../support/random.js';

// Memory of `ferry import` is bounded by a listing page and the batches in flight, never by the
// number of objects: 100,000 tiny files through the CLI in a fresh process whose peak RSS is read
// back (max-rss-preload.mjs).

const MiB = 2 ** 20;
const COUNT = 100_000;
const DIRS = 100;
const RSS_LIMIT = 300 * MiB;

let work: string;
let origin: string;

beforeAll(async () => {
  requireBuiltCli();
  work = await mkdtemp(join(tmpdir(), 'ferry-import-rss-'));
  origin = join(work, 'origin');
  await mkdir(origin);
  await writeTinyFiles(origin, COUNT, DIRS);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('importing 100,000 objects', () => {
  it(`keeps the process under ${RSS_LIMIT / MiB} MiB RSS, and a re-import writes nothing`, async () => {
    const volume = uniqueName('imp');
    const redisUrl = `${inject('redisUrl')}/0`;
    const config = await writeFerryConfig(work, sourceOnlyConfig(volume, `file://${work}/store`, redisUrl));
    const first = await runImportCli(['import', `file://${origin}`, '/bulk', '--json'], { config, measureRss: true, timeoutMs: 120_000 });
    const summary = importSummary(first);
    expect(summary).toMatchObject({ listed: COUNT, new: COUNT, skipped: 0, commits: COUNT / FOLDER_BATCH.files });
    expect(first.maxRssBytes).toBeGreaterThan(0);
    expect(first.maxRssBytes).toBeLessThan(RSS_LIMIT);

    const redis = connectRedis(redisUrl, { name: 'import-rss' });
    try {
      expect(await redis.hlen(volumeKeys(volume).entries)).toBe(COUNT);
      const logLength = await redis.xlen(volumeKeys(volume).log);
      const again = await runImportCli(['import', `file://${origin}`, '/bulk', '--json'], { config, measureRss: true, timeoutMs: 120_000 });
      const re = importSummary(again);
      expect(re).toMatchObject({ listed: COUNT, new: 0, changed: 0, unchanged: COUNT, commits: 0 });
      expect(again.maxRssBytes).toBeLessThan(RSS_LIMIT);
      expect(await redis.xlen(volumeKeys(volume).log)).toBe(logLength);
    } finally {
      redis.disconnect();
    }
  });
});
