import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkKey, type NewEntry, nativeChunkId, parseConfig, sha256Hex, silentLogger } from '@ferry/core';
import { connectRedis } from '@ferry/meta';
import { openRegion } from '@ferry/region';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { requireBuiltCli, runFerry, sourceOnlyConfig, writeFerryConfig } from '../support/cli.js';
import { tarHeader } from '../support/import.js';
import { uniqueName } from '../support/random.js';

// Garbage collection of a deleted folder of 100,000 one-chunk files: `ferry gc` in a fresh
// process whose peak RSS is read back (max-rss-preload.mjs) while Redis's slow log watches for
// any command of 50 ms or more, its V8 heap capped at 64 MiB. The objects are written with tar (fast), the entries committed
// and deleted through the metadata API, as `ferry put` and `ferry rm -R` would.

const MiB = 2 ** 20;
const COUNT = Number(process.env.GC_SCALE_COUNT ?? 100_000);
const RSS_LIMIT = 300 * MiB;
const SLOW_US = 50_000;
const HEAP_LIMIT_MIB = 64;

let work: string;

beforeAll(async () => {
  requireBuiltCli();
  work = await mkdtemp(join(tmpdir(), 'ferry-gc-scale-'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Write objects under a store root with one tar process (100,000 small files in seconds). */
async function writeObjects(root: string, objects: Array<{ key: string; body: Buffer }>): Promise<void> {
  await mkdir(root, { recursive: true });
  const tar = spawn('tar', ['-x', '-C', root], { stdio: ['pipe', 'ignore', 'inherit'] });
  const closed = new Promise<number | null>((resolve) => tar.once('close', resolve));
  const mtime = Math.floor(Date.now() / 1000) - 60;
  let parts: Buffer[] = [];
  for (const [i, { key, body }] of objects.entries()) {
    parts.push(tarHeader(key, body.length, mtime), body, Buffer.alloc(512 - body.length));
    if (parts.length >= 3000 || i === objects.length - 1) {
      if (i === objects.length - 1) parts.push(Buffer.alloc(1024));
      if (!tar.stdin?.write(Buffer.concat(parts))) await new Promise((resolve) => tar.stdin?.once('drain', resolve));
      parts = [];
    }
  }
  tar.stdin?.end();
  expect(await closed).toBe(0);
}

async function countFiles(dir: string): Promise<number> {
  const names = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return names.filter((d) => d.isFile()).length;
}

describe('gc of 100,000 unreferenced chunks', () => {
  it(`deletes them all with the process under ${RSS_LIMIT / MiB} MiB RSS and no Redis command of ${SLOW_US / 1000} ms or more`, async () => {
    const volume = uniqueName('gcs');
    const redisUrl = `${inject('redisUrl')}/0`;
    const root = join(work, 'store');
    const doc = sourceOnlyConfig(volume, `file://${root}?fsync=0`, redisUrl, { chunkSize: '1KiB' });
    const config = await writeFerryConfig(work, doc);
    const bodies = Array.from({ length: COUNT }, (_, i) => Buffer.from(`gc-scale-${i}`));
    const ids = bodies.map((b) => nativeChunkId(sha256Hex(b)));
    await writeObjects(
      root,
      ids.map((id, i) => ({ key: chunkKey(id), body: bodies[i] as Buffer })),
    );
    const region = openRegion({ config: parseConfig(doc), region: 'src', role: 'client', logger: silentLogger, clientName: 'gc-scale' });
    const redis = connectRedis(redisUrl, { name: 'gc-scale' });
    const [, threshold] = (await redis.config('GET', 'slowlog-log-slower-than')) as [string, string];
    try {
      for (let i = 0; i < COUNT; i += 500) {
        const entries: NewEntry[] = ids.slice(i, i + 500).map((id, j) => ({
          path: `/bulk/d${(i + j) % 100}/f${i + j}.bin`,
          size: (bodies[i + j] as Buffer).length,
          mtime: Date.now(),
          chunkSize: 1024,
          chunks: [{ id, size: (bodies[i + j] as Buffer).length }],
        }));
        await region.meta.commit(entries);
      }
      await region.meta.delete('/bulk', { recursive: true });
      expect(await redis.zcard(region.meta.keys.unreferenced)).toBe(COUNT);
      expect(await countFiles(join(root, 'chunks'))).toBe(COUNT);

      await redis.config('SET', 'slowlog-log-slower-than', String(SLOW_US / 5));
      await redis.slowlog('RESET');
      // A capped heap: a pass that held per-chunk state for the whole set would die of it here.
      const gc = await runFerry(['gc', '--grace', '0s', '--json'], {
        config,
        measureRss: true,
        timeoutMs: 300_000,
        env: { NODE_OPTIONS: `--max-old-space-size=${HEAP_LIMIT_MIB}` },
      });
      expect(gc.stderr).toBe('');
      expect(gc.code).toBe(0);
      const report = JSON.parse(gc.stdout.trim().split('\n').at(-1) as string);
      expect(report.reclaimed.chunks).toBe(COUNT);
      expect(await countFiles(join(root, 'chunks'))).toBe(0);
      expect(await redis.zcard(region.meta.keys.unreferenced)).toBe(0);
      const slow = ((await redis.slowlog('GET', 1000)) as Array<[number, number, number, string[]]>).filter(([, , us]) => us >= SLOW_US);
      expect(slow.map(([, , us, cmd]) => `${cmd.slice(0, 2).join(' ')}: ${us} µs`)).toEqual([]);
      console.log(`gc of ${COUNT} chunks: peak RSS ${((gc.maxRssBytes ?? 0) / MiB).toFixed(1)} MiB`);
      expect(gc.maxRssBytes).toBeGreaterThan(0);
      expect(gc.maxRssBytes).toBeLessThan(RSS_LIMIT);
    } finally {
      await redis.config('SET', 'slowlog-log-slower-than', threshold);
      redis.disconnect();
      await region.close();
    }
  }, 600_000);
});
