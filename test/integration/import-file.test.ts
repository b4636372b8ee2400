import { mkdtemp, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { externalChunkId, type NewEntry, TransientError, UnavailableError } from '@ferry/core';
import { importId, importPrefix, originStoreUrl } from '@ferry/importer';
import { connectRedis, FOLDER_BATCH, Meta, volumeKeys } from '@ferry/meta';
import { compareKeys, createStore, type ObjectStore } from '@ferry/stores';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliWorkspace,
  cliWorkspace,
  expectOneLineError,
  type FerryResult,
  runFerry,
  sourceOnlyConfig,
  writeFerryConfig,
} from '../support/cli.js';
import {
  changesAfter,
  importSummary,
  lastLogId,
  type OriginObject,
  originObjects,
  runImportCli,
  spawnImportCli,
  volumeEntries,
  withoutVersions,
  writeTree,
} from '../support/import.js';
import { uniqueName } from '../support/random.js';

// `ferry import` from a file:// origin of 10,000 objects: the first import, a re-import that
// writes nothing, a run killed with SIGKILL and resumed, a 1 % change at the origin, --delete,
// keys that are no volume paths, conflicts with put files, and reads through the origin tier.

const KiB = 1024;
const CHUNK = 64 * KiB;
const COUNT = 10_000;
const TARGET = '/imported';

let workspace: CliWorkspace | undefined;
let redisUrl: string;
let redis: Redis;
let work: string;
let originDir: string;
let originUrl: string;
const objects = new Map<string, Buffer>();

/** A one-region volume (file:// store) with its config file. */
async function volume(): Promise<{ name: string; config: string }> {
  const name = uniqueName('imp');
  const dir = await mkdtemp(join(work, 'vol-'));
  const config = await writeFerryConfig(dir, sourceOnlyConfig(name, `file://${dir}/store`, redisUrl, { chunkSize: '64KiB' }));
  return { name, config };
}

/**
 * Exit 1, nothing on stdout, and one `ferry:` line naming the changed object. The reader also
 * logs each refused chunk as a pino warning on stderr (reported upstream); those records are
 * allowed here, nothing else is.
 */
function expectPreconditionFailed(result: FerryResult, key: string): void {
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  const own = lines.filter((l) => !/^\{"level":\d+,.*"type":"PreconditionFailedError"/.test(l));
  expect(own, result.stderr).toHaveLength(1);
  const trimmed = result.stderr.replace(/^\{"level".*\n/gm, '');
  expectOneLineError({ ...result, stderr: trimmed }, 1, key);
  expect(own[0]).toMatch(/changed \(etag /);
}

function pathOf(key: string): string {
  return `${TARGET}/${key}`;
}

const invalidKeys = ['bad\u0001control.bin', 'back\\slash.bin', `${'long-segment-'.padEnd(200, 'x')}/`.repeat(5).concat('too-long.bin')];

beforeAll(async () => {
  workspace = await cliWorkspace('import-file');
  ({ redisUrl, redis, work } = workspace);
  originDir = join(work, 'origin');
  originUrl = originStoreUrl(`file://${originDir}`);
  const all: OriginObject[] = [...originObjects(COUNT, CHUNK)];
  for (const o of all) objects.set(o.key, o.bytes);
  await writeTree(originDir, [...all, ...invalidKeys.map((key) => ({ key, bytes: Buffer.from('x') }))]);
});

afterAll(async () => {
  await workspace?.close();
});

describe('ferry import from file:// (10,000 objects)', () => {
  let a: { name: string; config: string };

  it('imports every object as an entry referencing the origin, skipping keys that are no volume paths', async () => {
    a = await volume();
    const summary = importSummary(await runImportCli(['import', `file://${originDir}/`, TARGET, '--json'], { config: a.config }));
    expect(summary).toMatchObject({ listed: COUNT + 3, new: COUNT, changed: 0, unchanged: 0, deleted: 0, skipped: 3, resumed: false });
    expect(summary.skippedBy).toEqual({ 'control-character': 1, backslash: 1, 'too-long': 1 });
    expect(summary.commits).toBe(COUNT / FOLDER_BATCH.files);

    const entries = await volumeEntries(redis, a.name);
    expect([...entries.keys()].sort()).toEqual([...objects.keys()].map(pathOf).sort());
    // Nothing is mapped outside the target.
    for (const path of entries.keys()) expect(path.startsWith(`${TARGET}/`)).toBe(true);
    const big = [...objects].find(([, b]) => b.length > 3 * CHUNK) as [string, Buffer];
    const entry = entries.get(pathOf(big[0]));
    const info = await createStore(originUrl).head(big[0]);
    expect(entry).toMatchObject({
      size: big[1].length,
      chunkSize: CHUNK,
      mtime: info.lastModified,
      origin: { store: originUrl, key: big[0], etag: info.etag, size: big[1].length, lastModified: info.lastModified },
    });
    expect(entry?.sha256).toBeUndefined();
    expect(entry?.chunks.map((c) => c.size)).toEqual([CHUNK, CHUNK, CHUNK, 1234]);
    expect(entry?.chunks[1]?.id).toBe(externalChunkId({ store: originUrl, key: big[0], etag: info.etag, offset: CHUNK, length: CHUNK }));
    const empty = [...objects].find(([, b]) => b.length === 0) as [string, Buffer];
    expect(entries.get(pathOf(empty[0]))?.chunks).toEqual([]);

    // Reads come from the origin, byte for byte: a whole folder with empty files, unicode and
    // space names and a file of several chunks.
    const local = join(work, 'got-folder');
    const get = await runFerry(['get', `${TARGET}/with space/inner dir`, local], { config: a.config });
    expect(get.code, get.stderr).toBe(0);
    const folder = [...objects].filter(([k]) => k.startsWith('with space/inner dir/'));
    expect(folder.some(([, b]) => b.length === 0)).toBe(true);
    expect(folder.some(([k, b]) => b.length > 3 * CHUNK && k.includes(' '))).toBe(true);
    expect(folder.some(([k]) => k.includes('🚀'))).toBe(true);
    for (const [k, bytes] of folder)
      expect((await readFile(join(local, k.slice('with space/inner dir/'.length)))).equals(bytes), k).toBe(true);
  });

  it('re-imports an unchanged origin without a single metadata write', async () => {
    const logBefore = await redis.xlen(volumeKeys(a.name).log);
    const before = await volumeEntries(redis, a.name);
    const summary = importSummary(await runImportCli(['import', `file://${originDir}`, TARGET, '--json'], { config: a.config }));
    expect(summary).toMatchObject({ listed: COUNT + 3, new: 0, changed: 0, unchanged: COUNT, skipped: 3, commits: 0 });
    expect(await redis.xlen(volumeKeys(a.name).log)).toBe(logBefore);
    expect(await volumeEntries(redis, a.name)).toEqual(before);

    // In process, every command counted: the only writes are to the import's own checkpoint.
    const counted = connectRedis(redisUrl, { name: 'import-counted' });
    const commands: Array<[string, string]> = [];
    const send = counted.sendCommand.bind(counted);
    counted.sendCommand = ((command: { name: string; args: unknown[] }) => {
      commands.push([command.name, String(command.args[0] ?? '')]);
      return send(command as never);
    }) as typeof counted.sendCommand;
    try {
      const again = await importPrefix({
        meta: new Meta({ redis: counted, volume: a.name }),
        origin: createStore(originUrl),
        originUrl,
        target: TARGET,
        chunkSize: CHUNK,
      });
      expect(again).toMatchObject({ new: 0, changed: 0, unchanged: COUNT, commits: 0 });
    } finally {
      counted.disconnect();
    }
    const names = new Set(commands.map(([name]) => name));
    for (const write of ['evalsha', 'eval', 'xadd', 'hdel', 'zadd', 'zrem', 'del']) expect(names.has(write), write).toBe(false);
    const checkpointKey = `ferry:{${a.name}}:import:${importId(originUrl, TARGET)}`;
    for (const [name, key] of commands)
      if (['hset', 'expire', 'unlink', 'sadd'].includes(name)) expect(key.startsWith(checkpointKey)).toBe(true);
  });

  it('resumes an import killed with SIGKILL from its checkpoint and ends in the same state as an uninterrupted one', async () => {
    const b = await volume();
    const first = spawnImportCli(['import', `file://${originDir}`, TARGET, '--json', '--concurrency', '1'], { config: b.config });
    // Killed as soon as its checkpoint has moved past a first page (polled, since on a quiet
    // machine the whole import can end before its first progress line).
    const checkpointKey = `ferry:{${b.name}}:import:${importId(originUrl, TARGET)}`;
    let exited = false;
    void first.result.then(() => {
      exited = true;
    });
    while (!exited && !(await redis.hget(checkpointKey, 'cursor'))) await new Promise((r) => setTimeout(r, 2));
    first.child.kill('SIGKILL');
    const killed = await first.result;
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const checkpoint = await redis.hgetall(`ferry:{${b.name}}:import:${importId(originUrl, TARGET)}`);
    expect(checkpoint.phase).toBe('list');
    const partial = (await volumeEntries(redis, b.name)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(COUNT);

    const resumed = importSummary(await runImportCli(['import', `file://${originDir}`, TARGET, '--json'], { config: b.config }));
    expect(resumed.resumed).toBe(true);
    expect(resumed.listedThisRun).toBeLessThan(COUNT);
    expect(resumed.listed).toBe(COUNT + 3);
    expect(await redis.exists(`ferry:{${b.name}}:import:${importId(originUrl, TARGET)}`)).toBe(0);
    expect(withoutVersions(await volumeEntries(redis, b.name))).toEqual(withoutVersions(await volumeEntries(redis, a.name)));

    // Running it again changes nothing.
    const again = importSummary(await runImportCli(['import', `file://${originDir}`, TARGET, '--json'], { config: b.config }));
    expect(again).toMatchObject({ new: 0, changed: 0, unchanged: COUNT, commits: 0, resumed: false });
  });

  it('never moves the checkpoint past an object whose entry is not committed (commit failures mid-run)', async () => {
    // A sub-prefix without invalid keys, so pages and batches stay aligned: then, with slow
    // commits and slower entry lookups, batches finish while the next page is being classified,
    // the moment a checkpoint could run ahead of what is committed.
    const subUrl = originStoreUrl(`file://${originDir}/deep`);
    const keys = [...objects.keys()].filter((k) => k.startsWith('deep/')).map((k) => k.slice('deep/'.length));
    const sorted = keys.sort(compareKeys);
    let calls = 0;
    let failAt = 9;
    class SlowMeta extends Meta {
      override async commit(entries: NewEntry[]) {
        await new Promise((r) => setTimeout(r, 10));
        if (++calls === failAt) throw new TransientError('injected commit failure');
        return super.commit(entries);
      }
    }
    const slow = connectRedis(redisUrl, { name: 'import-slow-lookups' });
    const hmget = slow.hmget.bind(slow);
    slow.hmget = (async (...args: Parameters<typeof hmget>) => {
      await new Promise((r) => setTimeout(r, 30));
      return hmget(...args);
    }) as typeof slow.hmget;
    const options = {
      redis: slow,
      origin: createStore(subUrl),
      originUrl: subUrl,
      target: TARGET,
      chunkSize: CHUNK,
      batchSize: 50,
      pageSize: 100,
    };
    const [name, reference] = [uniqueName('imp'), uniqueName('imp')];
    try {
      await expect(importPrefix({ ...options, meta: new SlowMeta({ redis, volume: name }) })).rejects.toThrow('injected commit failure');
      const { cursor } = await redis.hgetall(`ferry:{${name}}:import:${importId(subUrl, TARGET)}`);
      const committed = await volumeEntries(redis, name);
      const covered = cursor ? sorted.filter((k) => compareKeys(k, cursor) <= 0) : [];
      expect(covered.length).toBeGreaterThan(0);
      for (const key of covered) expect(committed.has(pathOf(key)), `${key} is before the checkpoint ${cursor}`).toBe(true);

      failAt = 0;
      const resumed = await importPrefix({ ...options, meta: new SlowMeta({ redis, volume: name }) });
      expect(resumed).toMatchObject({ resumed: true, listed: keys.length, listedThisRun: keys.length - covered.length, skipped: 0 });
      expect(resumed.new + resumed.unchanged).toBe(keys.length);
      const whole = await importPrefix({ ...options, meta: new Meta({ redis, volume: reference }) });
      expect(whole).toMatchObject({ listed: keys.length, new: keys.length });
      expect(withoutVersions(await volumeEntries(redis, name))).toEqual(withoutVersions(await volumeEntries(redis, reference)));
    } finally {
      slow.disconnect();
    }
  });

  it('waits out a garbage-collection claim on a chunk it commits, then commits (no upload: the origin holds it)', async () => {
    const subUrl = originStoreUrl(`file://${originDir}/deep`);
    const keys = [...objects.keys()].filter((k) => k.startsWith('deep/'));
    const name = uniqueName('imp');
    const claims = volumeKeys(name).gcClaims;
    let claimed: string | undefined;
    class ClaimedOnce extends Meta {
      override async commit(entries: NewEntry[]) {
        if (!claimed) {
          // Garbage collection claims a chunk this batch references, and finishes 300 ms later.
          claimed = entries[0]?.chunks[0]?.id as string;
          await redis.hset(claims, claimed, `${Date.now()} gc-test`);
          setTimeout(() => void redis.hdel(claims, claimed as string), 300);
        }
        return super.commit(entries);
      }
    }
    const started = Date.now();
    const summary = await importPrefix({
      meta: new ClaimedOnce({ redis, volume: name }),
      origin: createStore(subUrl),
      originUrl: subUrl,
      target: TARGET,
      chunkSize: CHUNK,
    });
    expect(claimed).toMatch(/^ext-/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(summary).toMatchObject({ listed: keys.length, new: keys.length, skipped: 0 });
    expect((await volumeEntries(redis, name)).size).toBe(keys.length);
  });

  it('after 1 % of the origin changes, writes exactly those; --delete removes only vanished imported files', async () => {
    const keys = [...objects.keys()];
    const overwritten = keys.filter((_, i) => i % 100 === 5).slice(0, 40);
    const removed = keys.filter((_, i) => i % 100 === 55).slice(0, 30);
    const added = Array.from({ length: 30 }, (_, i) => `added/new file ${i}.bin`);
    const changed = [
      ...overwritten.map((k) => [k, Buffer.from(`new content of ${k}`)] as const),
      ...added.map((k) => [k, Buffer.from(k)] as const),
    ];
    await writeTree(
      originDir,
      changed.map(([key, bytes]) => ({ key, bytes })),
    );
    for (const [k, b] of changed) objects.set(k, b);
    for (const k of removed) {
      await unlink(join(originDir, ...k.split('/')));
      objects.delete(k);
    }
    // Files written by `ferry put` under the target: one where the origin now has an object too.
    const local = join(work, 'handmade');
    await writeTree(local, [
      { key: 'by-hand.txt', bytes: Buffer.from('written by put') },
      { key: 'put-conflict.bin', bytes: Buffer.from('written by put') },
    ]);
    await writeTree(originDir, [{ key: 'added/put-conflict.bin', bytes: Buffer.from('origin bytes') }]);
    const put = await runFerry(['put', local, `${TARGET}/added`], { config: a.config });
    expect(put.code, put.stderr).toBe(0);

    const mark = await lastLogId(redis, a.name);
    const dry = importSummary(
      await runImportCli(['import', `file://${originDir}`, TARGET, '--json', '--dry-run', '--delete'], { config: a.config }),
    );
    expect(dry).toMatchObject({ dryRun: true, new: 30, changed: 40, deleted: 30, commits: 0 });
    expect((await changesAfter(redis, a.name, mark)).records).toBe(0);

    const summary = importSummary(await runImportCli(['import', `file://${originDir}`, TARGET, '--json'], { config: a.config }));
    expect(summary).toMatchObject({ new: 30, changed: 40, deleted: 0, unchanged: COUNT - 70 });
    expect(summary.skippedBy).toMatchObject({ conflict: 1 });
    expect(summary.skippedExamples).toContainEqual({ key: 'added/put-conflict.bin', reason: 'conflict' });
    const written = await changesAfter(redis, a.name, mark);
    expect(written.put).toEqual([...overwritten, ...added].map(pathOf).sort());
    expect(written.del).toEqual([]);
    const entries = await volumeEntries(redis, a.name);
    for (const k of removed) expect(entries.has(pathOf(k))).toBe(true); // without --delete they stay

    // A --delete run whose listing fails after 3 pages; the resumed run must still know what
    // those pages listed, or it would delete their files.
    const beforeDelete = await lastLogId(redis, a.name);
    const real = createStore(originUrl);
    const flaky: ObjectStore = {
      url: real.url,
      capabilities: real.capabilities,
      head: (key) => real.head(key),
      get: (key, options) => real.get(key, options),
      put: (key, body) => real.put(key, body),
      delete: (key) => real.delete(key),
      async *list(prefix, options) {
        let pages = 0;
        for await (const page of real.list(prefix, options)) {
          if (++pages > 3) throw new UnavailableError('injected listing failure');
          yield page;
        }
      },
    };
    const failing = importPrefix({
      meta: new Meta({ redis, volume: a.name }),
      origin: flaky,
      originUrl,
      target: TARGET,
      chunkSize: CHUNK,
      delete: true,
    });
    await expect(failing).rejects.toThrow('injected listing failure');
    const checkpoint = await redis.hgetall(`ferry:{${a.name}}:import:${importId(originUrl, TARGET)}`);
    expect(checkpoint).toMatchObject({ phase: 'list', seen: '1' });
    expect(await redis.scard(`ferry:{${a.name}}:import:${importId(originUrl, TARGET)}:seen:${checkpoint.run}`)).toBeGreaterThanOrEqual(
      2990,
    );
    expect((await changesAfter(redis, a.name, beforeDelete)).records).toBe(0);

    const synced = importSummary(await runImportCli(['import', `file://${originDir}`, TARGET, '--json', '--delete'], { config: a.config }));
    expect(synced).toMatchObject({ resumed: true, new: 0, changed: 0, deleted: 30 });
    expect(synced.listedThisRun).toBeLessThan(synced.listed);
    expect(await redis.keys(`ferry:{${a.name}}:import:*`)).toEqual([]);
    const deletes = await changesAfter(redis, a.name, beforeDelete);
    expect(deletes.put).toEqual([]);
    expect(deletes.del).toEqual(removed.map(pathOf).sort());
    // Every delete is a change record of its own, and the summary counts each one.
    expect(synced.commits).toBe(deletes.records);
    const after = await volumeEntries(redis, a.name);
    expect(after.get(`${TARGET}/added/by-hand.txt`)?.origin).toBeUndefined();
    expect(after.get(`${TARGET}/added/put-conflict.bin`)?.origin).toBeUndefined();
    expect([...after.values()].filter((e) => e.origin).length).toBe(objects.size);
  });

  it('reads fail with PreconditionFailed after the origin object is overwritten, and a re-import serves the new bytes', async () => {
    const key = [...objects].find(([, b]) => b.length > 3 * CHUNK)?.[0] as string;
    const fresh = Buffer.alloc(2 * CHUNK + 7, 'n');
    await writeTree(originDir, [{ key, bytes: fresh }]);
    for (const args of [
      ['cat', pathOf(key)],
      ['get', pathOf(key), join(work, 'got.bin')],
    ]) {
      const failed = await runFerry(args, { config: a.config });
      expectPreconditionFailed(failed, key);
    }

    importSummary(await runImportCli(['import', `file://${originDir}`, TARGET, '--json'], { config: a.config }));
    const again = await runFerry(['cat', pathOf(key)], { config: a.config });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdoutBytes.equals(fresh)).toBe(true);
  });
});
