import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { originStoreUrl } from '@ferry/importer';
import { connectRedis, volumeKeys } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { expectOneLineError, type FerryResult, requireBuiltCli, runFerry, sourceOnlyConfig, writeFerryConfig } from './cli.js';
import { changesAfter, importSummary, lastLogId, originObjects, runImportCli, volumeEntries } from './import.js';
import { uniqueName } from './random.js';

export interface CloudOrigin {
  /** A store over `prefix` of the test bucket. */
  store(prefix: string): ObjectStore;
  /** The store URL of `prefix` (with the emulator's options). */
  url(prefix: string): string;
  /** Write a key the store's own put would refuse (through the raw SDK); full key, bucket-relative. */
  rawPut(key: string, bytes: Buffer): Promise<void>;
  /** Odd keys (relative to the prefix) this server can hold, with the skip reason each must get. */
  oddKeys: Record<string, string>;
  /** Environment of the CLI processes (credentials, metadata probing off). */
  env: Record<string, string>;
}

const KiB = 1024;
const CHUNK = 64 * KiB;
const TARGET = '/from-bucket';

/** Exit 1 and one `ferry:` line naming the changed object (reader warnings aside; see import-file). */
function expectPreconditionFailed(result: FerryResult, key: string): void {
  const own = result.stderr.split('\n').filter((l) => l !== '' && !/^\{"level":\d+,.*"msg":"chunk copy unusable/.test(l));
  expect(own, result.stderr).toHaveLength(1);
  expectOneLineError({ ...result, stderr: `${own[0]}\n` }, 1, key);
  expect(own[0]).toMatch(/changed/);
}

/**
 * The import tests every cloud backend runs: first import of `count` objects, a re-import that
 * writes nothing, a 1 % change with and without --delete, and reads through the origin tier
 * before and after the origin object is overwritten.
 */
export function cloudImportSuite(name: string, origin: CloudOrigin, count: number): void {
  describe(`ferry import from ${name} (${count} objects)`, () => {
    const prefix = uniqueName(`import-${name}`);
    const objects = new Map<string, Buffer>();
    const figures: string[] = [];
    let store: ObjectStore;
    let redis: Redis;
    let work: string;
    let volume: string;
    let config: string;
    let url: string;
    const importArgs = (...extra: string[]) => ['import', origin.url(prefix), TARGET, '--json', ...extra];
    const run = async (...extra: string[]) => importSummary(await runImportCli(importArgs(...extra), { config, env: origin.env }));

    beforeAll(async () => {
      requireBuiltCli();
      const redisUrl = `${inject('redisUrl')}/0`;
      redis = connectRedis(redisUrl, { name: `import-${name}` });
      work = await mkdtemp(join(tmpdir(), `ferry-import-${name}-`));
      volume = uniqueName('imp');
      config = await writeFerryConfig(work, sourceOnlyConfig(volume, `file://${work}/store`, redisUrl, { chunkSize: '64KiB' }));
      store = origin.store(prefix);
      url = originStoreUrl(origin.url(prefix));
      const all = [...originObjects(count, CHUNK)];
      const started = Date.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let o = all[next++]; o; o = all[next++]) {
            await store.put(o.key, o.bytes);
            objects.set(o.key, o.bytes);
          }
        }),
      );
      for (const key of Object.keys(origin.oddKeys)) await origin.rawPut(`${prefix}/${key}`, Buffer.from('odd'));
      figures.push(`${name}: uploaded ${count} objects in ${Date.now() - started} ms`);
    });

    afterAll(async () => {
      for (const line of figures) console.log(line);
      redis?.disconnect();
      await store?.close?.();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('imports every object and skips the keys that are no volume paths', async () => {
      const summary = await run();
      figures.push(`${name}: first import ${summary.objectsPerSecond} objects/s (${summary.seconds.toFixed(2)} s)`);
      const odd = Object.keys(origin.oddKeys).length;
      expect(summary).toMatchObject({ listed: count + odd, new: count, changed: 0, unchanged: 0, skipped: odd });
      const reasons: Record<string, number> = {};
      for (const reason of Object.values(origin.oddKeys)) reasons[reason] = (reasons[reason] ?? 0) + 1;
      expect(summary.skippedBy).toEqual(reasons);
      const entries = await volumeEntries(redis, volume);
      expect([...entries.keys()].sort()).toEqual([...objects.keys()].map((k) => `${TARGET}/${k}`).sort());
      for (const e of entries.values()) expect(e.origin?.store).toBe(url);

      // Every file read back through the origin tier, byte for byte.
      const local = join(work, 'all');
      const get = await runFerry(['get', TARGET, local], { config, env: origin.env });
      expect(get.code, get.stderr).toBe(0);
      for (const [k, bytes] of objects) expect((await readFile(join(local, ...k.split('/')))).equals(bytes), k).toBe(true);
    });

    it('re-imports an unchanged bucket without a metadata write', async () => {
      const logLength = await redis.xlen(volumeKeys(volume).log);
      const before = await volumeEntries(redis, volume);
      const summary = await run();
      figures.push(`${name}: re-import (unchanged) ${summary.objectsPerSecond} objects/s (${summary.seconds.toFixed(2)} s)`);
      expect(summary).toMatchObject({ new: 0, changed: 0, unchanged: count, commits: 0 });
      expect(await redis.xlen(volumeKeys(volume).log)).toBe(logLength);
      expect(await volumeEntries(redis, volume)).toEqual(before);
    });

    it('after 1 % changes writes exactly those, and --delete removes the vanished ones', async () => {
      const keys = [...objects.keys()];
      const per = Math.max(1, Math.round(count / 300));
      const overwritten = keys.filter((_, i) => i % 50 === 9).slice(0, per);
      const removed = keys.filter((_, i) => i % 50 === 29).slice(0, per);
      const added = Array.from({ length: per }, (_, i) => `added/new ${i}.bin`);
      for (const k of [...overwritten, ...added]) {
        const bytes = Buffer.from(`changed ${k}`);
        await store.put(k, bytes);
        objects.set(k, bytes);
      }
      for (const k of removed) {
        await store.delete(k);
        objects.delete(k);
      }
      const mark = await lastLogId(redis, volume);
      const summary = await run();
      expect(summary).toMatchObject({ new: per, changed: per, deleted: 0, unchanged: count - 2 * per });
      const written = await changesAfter(redis, volume, mark);
      expect(written.put).toEqual([...overwritten, ...added].map((k) => `${TARGET}/${k}`).sort());
      expect(written.del).toEqual([]);

      const beforeDelete = await lastLogId(redis, volume);
      const synced = await run('--delete');
      expect(synced).toMatchObject({ new: 0, changed: 0, deleted: per });
      const deletes = await changesAfter(redis, volume, beforeDelete);
      expect(deletes).toMatchObject({ put: [], del: removed.map((k) => `${TARGET}/${k}`).sort() });
      expect([...(await volumeEntries(redis, volume)).keys()].sort()).toEqual([...objects.keys()].map((k) => `${TARGET}/${k}`).sort());
    });

    it('a read after the origin object is overwritten fails with PreconditionFailed; a re-import serves the new bytes', async () => {
      // Sizes are random: when no imported object spans several chunks, import one that does.
      let key = [...objects].find(([, b]) => b.length > 3 * CHUNK)?.[0];
      if (key === undefined) {
        key = 'forced/multi-chunk.bin';
        const bytes = randomBytes(4 * CHUNK + 5);
        await store.put(key, bytes);
        objects.set(key, bytes);
        expect(await run()).toMatchObject({ new: 1 });
      }
      const fresh = Buffer.alloc(CHUNK + 99, 'z');
      await store.put(key, fresh);
      expectPreconditionFailed(await runFerry(['cat', `${TARGET}/${key}`], { config, env: origin.env }), key);

      expect(await run()).toMatchObject({ changed: 1, new: 0 });
      const again = await runFerry(['cat', `${TARGET}/${key}`], { config, env: origin.env });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdoutBytes.equals(fresh)).toBe(true);
    });
  });
}
