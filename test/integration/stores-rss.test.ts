import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../support/random.js';
import { s3Env, s3Url } from '../support/s3.js';

const run = promisify(execFile);
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const SCRIPT = fileURLToPath(new URL('../support/rss-roundtrip.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../packages/stores/dist/index.js', import.meta.url));
const LIMIT = 200 * MiB;

interface Report {
  size: number;
  length: number;
  sha256Match: boolean;
  putMiBps: number;
  getMiBps: number;
  maxRssBytes: number;
}

/**
 * Memory stays bounded by (parts in flight × part size), never by object size: a 1 GiB object
 * goes through each backend in a fresh process whose peak RSS is then read back.
 */
describe('streaming a 1 GiB object keeps a process under 200 MiB RSS', () => {
  let dir: string;
  beforeAll(async () => {
    if (!existsSync(BUILT)) throw new Error('packages/stores/dist is missing: run `npm run build` (npm test does it first)');
    dir = await mkdtemp(join(tmpdir(), 'ferry-rss-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['file', () => `file://${dir}/store`],
    ['s3', () => s3Url(uniqueName('rss'))],
  ])('%s backend', async (_backend, url) => {
    const { stdout } = await run(process.execPath, [SCRIPT, url(), String(GiB)], {
      env: { ...process.env, ...s3Env(), NODE_OPTIONS: '' },
      maxBuffer: MiB,
    });
    const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Report;
    expect(report).toMatchObject({ size: GiB, length: GiB, sha256Match: true });
    expect(report.maxRssBytes).toBeLessThan(LIMIT);
  });
});
