import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NewEntry, nativeChunkId, sha256Hex } from '@ferry/core';
import { connectRedis, Meta } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { BIG, bigNamespace, commitAll } from '../support/big-namespace.js';
import {
  expectSuccess,
  jsonLines,
  lines,
  requireBuiltCli,
  runFerry,
  sourceOnlyConfig,
  spawnFerry,
  writeFerryConfig,
} from '../support/cli.js';
import { uniqueName } from '../support/random.js';

// `ferry ls` on a namespace of 100,000 entries: the CLI pages through the listing and prints
// exactly the direct children; `-R` of a small subtree lists every file below it; `--json` is
// one object per line. The entries are made directly with Meta.commit (1,000 a batch): the CLI
// only reads them, so no chunk has to exist.

const CHUNKS = Array.from({ length: 64 }, (_, i) => nativeChunkId(sha256Hex(`c${i}`)));
const { filesPerDir: FILES_PER_DIR } = BIG;
const SMALL = ['/big/zz-small/a.bin', '/big/zz-small/sub/b.bin', '/big/zz-small/sub/deeper/c.bin', '/big/zz-small/z.bin'];

let redis: Redis;
let work: string;
let config: string;
/** Direct children of /big in listing order, directories as `path/`. */
const children: string[] = [];

function file(path: string, i: number): NewEntry {
  return {
    path,
    size: 10 + (i % 7),
    mtime: 1_700_000_000_000 + i,
    chunkSize: 1024,
    chunks: [{ id: CHUNKS[i % CHUNKS.length] as NewEntry['chunks'][number]['id'], size: 10 + (i % 7) }],
  };
}

beforeAll(async () => {
  requireBuiltCli();
  const redisUrl = `${inject('redisUrl')}/0`;
  redis = connectRedis(redisUrl, { name: 'cli-listing' });
  const volume = uniqueName('cli-big-ns');
  const meta = new Meta({ redis, volume });
  work = await mkdtemp(join(tmpdir(), 'ferry-cli-listing-'));
  config = await writeFerryConfig(work, sourceOnlyConfig(volume, `file://${join(work, 'store')}`, redisUrl));

  const { paths, children: direct } = bigNamespace();
  children.push(...direct, '/big/zz-small/');
  paths.push(...SMALL);
  expect(paths.length).toBeGreaterThanOrEqual(100_000);
  await commitAll(meta, paths, file);
});

afterAll(async () => {
  redis?.disconnect();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The path column of human `ls` lines. */
function pathsOf(stdout: string): string[] {
  return lines(stdout).map((line) => line.slice(line.lastIndexOf('  ') + 2));
}

it('ls of a 100,000-entry namespace prints exactly the direct children; --json one object per line', async () => {
  const [human, json, root] = await Promise.all([
    runFerry(['ls', '/big'], { config }),
    runFerry(['ls', '/big', '--json'], { config }),
    runFerry(['ls', '/'], { config }),
  ]);
  expectSuccess(human);
  expect(pathsOf(human.stdout)).toEqual(children);

  expectSuccess(json);
  const items = jsonLines(json);
  expect(items).toHaveLength(children.length);
  expect(items.map((i) => (i.kind === 'dir' ? `${i.path}/` : i.path))).toEqual(children);
  for (const item of items) {
    if (item.kind === 'dir') expect(Object.keys(item).sort()).toEqual(['kind', 'path']);
    else expect(item).toMatchObject({ kind: 'file', size: expect.any(Number), mtime: expect.any(Number), version: expect.any(String) });
  }

  expectSuccess(root);
  expect(pathsOf(root.stdout)).toEqual(['/bi/', '/big.txt', '/big/', '/big0/']);

  // `ferry ls … | head`: the reader going away ends the listing quietly, as SIGPIPE would.
  const head = spawnFerry(['ls', '-R', '/big'], { config });
  head.child.stdout?.once('data', () => head.child.stdout?.destroy());
  const cut = await head.result;
  expect({ code: cut.code, stderr: cut.stderr }).toEqual({ code: 141, stderr: '' });
});

it('ls -R of a small subtree lists every file below it, and a directory of 1,000 files lists them all', async () => {
  const [small, json, dir] = await Promise.all([
    runFerry(['ls', '-R', '/big/zz-small'], { config }),
    runFerry(['ls', '-R', '/big/zz-small', '--json'], { config }),
    runFerry(['ls', '/big/c00053'], { config }),
  ]);
  expectSuccess(small);
  expect(pathsOf(small.stdout)).toEqual(SMALL);
  expectSuccess(json);
  expect(jsonLines(json).map((i) => [i.kind, i.path])).toEqual(SMALL.map((p) => ['file', p]));
  expectSuccess(dir);
  expect(pathsOf(dir.stdout)).toEqual(Array.from({ length: FILES_PER_DIR }, (_, j) => `/big/c00053/part-${j}`).sort());
});
