import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockCacheDir } from './dir-lock.js';

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-dir-lock-'));
  made.push(dir);
  return dir;
}

describe('the cache dir lock', () => {
  it('a second holder is refused with the first one named; after release the dir is free again', async () => {
    const dir = await tempDir();
    const first = await lockCacheDir(dir);
    first.describe({ id: 'n1', url: 'http://127.0.0.1:7700' });
    await expect(lockCacheDir(dir)).rejects.toThrow(
      `cache dir ${dir} is in use by cache node n1 (pid ${process.pid}, http://127.0.0.1:7700); one node serves one dir`,
    );
    await first.release();
    expect(existsSync(join(dir, '.lock'))).toBe(false);
    const second = await lockCacheDir(dir);
    await second.release();
  });

  it('a dir too long for a socket path is held through the abstract namespace, just as exclusively', async () => {
    const dir = join(await tempDir(), 'x'.repeat(60), 'y'.repeat(60));
    const first = await lockCacheDir(dir);
    await expect(lockCacheDir(dir)).rejects.toThrow(/is in use by another cache node \(pid \d+\)/);
    await first.release();
    await (await lockCacheDir(dir)).release();
  });
});
