import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig, silentLogger } from '@ferry/core';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import { Replicator } from '@ferry/replicator';
import { FsStore } from '@ferry/stores';
import { planPut, putFiles } from '@ferry/writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../support/random.js';
import { freePort } from '../support/servers/free-port.js';
import { waitFor } from '../support/wait.mjs';

const run = promisify(execFile);

/** A redis-server of this test's own that keeps its data across a restart (append-only file). */
async function startPersistentRedis(port: number, dir: string): Promise<void> {
  await run('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--appendonly',
    'yes',
    '--save',
    '',
    '--dir',
    dir,
    '--daemonize',
    'yes',
    '--pidfile',
    join(dir, 'redis.pid'),
  ]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await run('redis-cli', ['-p', String(port), 'ping'])).stdout.trim() === 'PONG') return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the replicator and a Redis restart', () => {
  let dir: string;
  let port: number;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-restart-'));
    port = await freePort();
    await startPersistentRedis(port, dir);
  });
  afterAll(async () => {
    await run('redis-cli', ['-p', String(port), 'shutdown', 'nosave']).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it('reconnects after its Redis restarts and goes on replicating', async () => {
    const volume = uniqueName('restart');
    const url = `redis://127.0.0.1:${port}`;
    const config = parseConfig({
      volume,
      chunkSize: '64KiB',
      source: 'src',
      regions: { src: { store: `file://${dir}/src`, redis: `${url}/0` }, eu: { store: `file://${dir}/eu`, redis: `${url}/1` } },
    });
    const sourceRedis = connectRedis(`${url}/0`, { maxRetriesPerRequest: null });
    const mirrorRedis = connectRedis(`${url}/1`, { maxRetriesPerRequest: null });
    const source = { store: new FsStore({ root: `${dir}/src`, fsync: false }), meta: new Meta({ redis: sourceRedis, volume }) };
    const mirror = new MirrorMeta({ redis: mirrorRedis, volume });
    const mirrorMeta = new Meta({ redis: mirrorRedis, volume });
    const put = async (name: string) => {
      const local = join(dir, name);
      await writeFile(local, randomBytes(300 * 1024));
      const { files } = await planPut(local, `/m/${name}`);
      await putFiles({
        store: source.store,
        meta: source.meta,
        files,
        chunkSize: 64 * 1024,
        concurrency: 4,
        holdTtlMs: config.writer.holdTtl,
        logger: silentLogger,
      });
    };
    const complete = async (path: string) => {
      const entry = await mirrorMeta.tryStat(path);
      return entry !== undefined && (await mirror.missing(entry.chunks.map((c) => c.id))).length === 0;
    };
    const replicator = new Replicator({ config, region: 'eu', logger: silentLogger, listen: false, watcher: { leaseTtlMs: 1500 } });
    await replicator.start();
    try {
      await put('before.bin');
      await waitFor(() => complete('/m/before.bin'), 30_000, '/m/before.bin mirrored across the restart', {
        everyMs: 100,
        tolerateErrors: true,
      });

      await run('redis-cli', ['-p', String(port), 'shutdown']);
      await new Promise((r) => setTimeout(r, 1500));
      await startPersistentRedis(port, dir);

      await put('after.bin');
      await waitFor(() => complete('/m/after.bin'), 60_000, '/m/after.bin mirrored after the restart', {
        everyMs: 100,
        tolerateErrors: true,
      });
      expect(await complete('/m/before.bin')).toBe(true);
      expect((await replicator.health()).ok).toBe(true);
    } finally {
      await replicator.stop();
      sourceRedis.disconnect();
      mirrorRedis.disconnect();
    }
  });
});
