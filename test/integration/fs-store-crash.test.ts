import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkDigest, parseChunkId } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { CLI, REPO, runCli, waitFor } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * The file store's crash contract (packages/stores/README.md): a key names a whole object or
 * nothing. Small objects are flushed in shared rounds before their rename, so a `kill -9` in the
 * middle of a put of many small files leaves no key whose bytes are not the chunk's, and a second
 * put completes the folder.
 */

const scope = useRegions();

async function chunkFiles(root: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const out: string[] = [];
  for (const a of await readdir(join(root, 'chunks')).catch(() => [] as string[]))
    for (const b of await readdir(join(root, 'chunks', a)).catch(() => [] as string[]))
      for (const name of await readdir(join(root, 'chunks', a, b)).catch(() => [] as string[])) out.push(join(root, 'chunks', a, b, name));
  return out;
}

describe('the file store after a kill -9', () => {
  it('holds only whole chunks under their keys after a put of 3,000 small files is killed, and a second put completes it', async () => {
    const regions = await scope.regions({});
    const r = regions;
    const root = r.source.root as string;
    const local = join(r.dir, 'small');
    for (let d = 0; d < 3; d++) {
      await mkdir(join(local, `d${d}`), { recursive: true });
      for (let i = 0; i < 1000; i++) await writeFile(join(local, `d${d}`, `f${i}.txt`), `file ${d}/${i} ${'x'.repeat(i % 97)}\n`);
    }
    const child = spawn(process.execPath, [CLI, 'put', local, '/small', '--config', r.configPath], { cwd: REPO, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await waitFor(async () => (await chunkFiles(root)).length >= 200, 60_000, 'the put to store some chunks', 5);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const left = await chunkFiles(root);
    expect(left.length).toBeGreaterThanOrEqual(200);
    expect(left.length).toBeLessThan(3000);
    for (const file of left) {
      const id = parseChunkId(file.split('/').at(-1) as string);
      const bytes = await readFile(file);
      expect(bytes.length, file).toBeGreaterThan(0);
      expect(createHash('sha256').update(bytes).digest('hex'), file).toBe(chunkDigest(id));
    }

    const again = await runCli(['put', local, '/small', '--config', r.configPath]);
    expect(again.code, again.stderr).toBe(0);
    expect((await chunkFiles(root)).length).toBe(3000);
    const read = await runCli(['cat', '/small/d2/f999.txt', '--config', r.configPath]);
    expect(read.stdout).toBe(`file 2/999 ${'x'.repeat(999 % 97)}\n`);
  });
});
