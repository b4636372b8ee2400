import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { collectGarbage } from '@ferry/region';
import type { ObjectStore } from '@ferry/stores';
import { describe, expect, it } from 'vitest';
import { CLI, REPO, type Regions, waitFor, writeRandomFile } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * What a `kill -9` of `ferry put` leaves in the source store (uploaded chunks no record knows,
 * the file store's `.part` files) is swept by the first pass after the grace, and only that:
 * what a second killed put left more recently stays.
 */

const MiB = 2 ** 20;

const scope = useRegions();

async function storeKeys(store: ObjectStore): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const page of store.list('chunks/')) for (const item of page.items) keys.add(item.key);
  return keys;
}

async function tempFiles(root: string): Promise<string[]> {
  return readdir(join(root, '.ferry-tmp')).catch(() => []);
}

/** Start `ferry put` of a large file and kill -9 it once it has stored a few chunks; returns the keys it left. */
async function killedPut(r: Regions, local: string, path: string): Promise<Set<string>> {
  const before = await storeKeys(r.source.store);
  const child = spawn(process.execPath, [CLI, 'put', local, path, '--concurrency', '8', '--config', r.configPath], {
    cwd: REPO,
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await waitFor(async () => (await storeKeys(r.source.store)).size >= before.size + 3, 30_000, 'the put to store some chunks', 5);
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  const left = new Set([...(await storeKeys(r.source.store))].filter((k) => !before.has(k)));
  expect(await r.source.meta.tryStat(path)).toBeUndefined();
  return left;
}

describe('gc of what killed puts leave', () => {
  it('sweeps the orphans and temp files of a kill -9 of a put once they are older than the grace, and keeps fresh ones', async () => {
    // A killed put's holds keep its uploads from GC for holdTtl after its last renewal.
    const regions = await scope.regions({ chunkSize: 256 * 1024, writer: { holdTtl: '1s' } });
    const r = regions;
    const root = r.source.root as string;
    await mkdir(root, { recursive: true });
    const first = await killedPut(r, await writeLocal(r, 'one.bin'), '/one.bin');
    expect(first.size).toBeGreaterThanOrEqual(3);
    const firstTemp = await tempFiles(root);

    const early = await collectGarbage(r.source, { graceMs: 3_600_000 });
    expect(early.reclaimed.chunks).toBe(0);
    expect(early.orphans.objects).toBe(0);
    for (const key of first) expect((await storeKeys(r.source.store)).has(key)).toBe(true);

    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const second = await killedPut(r, await writeLocal(r, 'two.bin'), '/two.bin');
    const secondTemp = (await tempFiles(root)).filter((name) => !firstTemp.includes(name));

    const pass = await collectGarbage(r.source, { graceMs: 2_000 });
    const after = await storeKeys(r.source.store);
    for (const key of first) expect(after.has(key), key).toBe(false);
    for (const key of second) expect(after.has(key), key).toBe(true);
    expect(pass.orphans.objects).toBe(first.size);
    // Temp files of the first put are gone; those of the second (if it was killed mid-write) stay.
    const leftTemp = await tempFiles(root);
    expect(leftTemp.sort()).toEqual(secondTemp.sort());
    expect(pass.temp.files).toBe(firstTemp.length);
    for (const name of firstTemp) expect(leftTemp).not.toContain(name);
  }, 120_000);
});

async function writeLocal(r: Regions, name: string): Promise<string> {
  const local = join(r.dir, name);
  await writeRandomFile(local, 256 * MiB);
  return local;
}
