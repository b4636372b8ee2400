import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '@ferry/core';
import { Meta, parseChangeRecord } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliWorkspace,
  cliWorkspace,
  expectOneLineError,
  expectSuccess,
  type FerryResult,
  jsonLines,
  jsonResult,
  lines,
  runFerry,
  sourceOnlyConfig,
  spawnFerry,
  writeFerryConfig,
} from '../support/cli.js';
import { uniqueName } from '../support/random.js';

// The `ferry` command on a small model folder: one atomic change record per folder put, then
// stat, cat, ls, mv and rm -R through the CLI. Chunks are 64 KiB so a few hundred KiB make
// multi-chunk files.

const CHUNK = 64 * 1024;

let workspace: CliWorkspace | undefined;
let redisUrl: string;
let redis: Redis;
let work: string;
let model: string;
/** The folder's files by relative path. */
const files = new Map<string, Buffer>([
  ['config.json', Buffer.from('{"architectures":["Tiny"],"hidden_size":64}\n')],
  ['model-00001-of-00002.safetensors', randomBytes(3 * CHUNK + 123)],
  ['model-00002-of-00002.safetensors', randomBytes(64 * CHUNK)],
  ['model.safetensors.index.json', Buffer.from('{"weight_map":{}}\n')],
  ['tokenizer/tokenizer.json', randomBytes(1000)],
  ['tokenizer/special tokens ü.txt', Buffer.from('<s> </s>\n')],
  ['empty.txt', Buffer.alloc(0)],
]);
/** A multi-chunk file, an empty one, and one whose name has a space and a non-ASCII letter. */
const PICKED = ['model-00001-of-00002.safetensors', 'empty.txt', 'tokenizer/special tokens ü.txt'];

beforeAll(async () => {
  workspace = await cliWorkspace('cli-namespace');
  ({ redisUrl, redis, work } = workspace);
  model = join(work, 'model');
  await writeFolder(model, files);
});

afterAll(async () => {
  await workspace?.close();
});

async function writeFolder(dir: string, content: Map<string, Buffer>): Promise<void> {
  for (const [rel, bytes] of content) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), bytes);
  }
}

/** A fresh volume with its own store and config; `ferry(...)` runs the CLI on it. */
async function freshVolume() {
  const volume = uniqueName('cli-ns');
  const config = await writeFerryConfig(
    work,
    sourceOnlyConfig(volume, `file://${join(work, volume)}`, redisUrl, { chunkSize: '64KiB' }),
    `${volume}.yaml`,
  );
  const meta = new Meta({ redis, volume });
  return {
    volume,
    config,
    ferry: (...args: string[]) => runFerry(args, { config }),
    /** The change log, read the way a mirror does: XRANGE on `ferry:{<volume>}:log`. */
    async log() {
      const key = `ferry:{${volume}}:log`;
      expect(key).toBe(meta.keys.log);
      const raw = (await redis.xrange(key, '-', '+')) as Array<[string, string[]]>;
      return raw.map((r) => parseChangeRecord(r));
    },
  };
}

describe('ferry put of a folder, then stat, cat and ls', () => {
  let v: Awaited<ReturnType<typeof freshVolume>>;
  let version: string;
  beforeAll(async () => {
    v = await freshVolume();
    const put = await v.ferry('put', model, '/m/tiny', '--json');
    expect(put.code, put.stderr).toBe(0);
    const summary = jsonResult(put);
    expect(summary).toMatchObject({ command: 'put', files: files.size, filesChanged: files.size });
    version = summary.version as string;
  });

  it('the whole folder is ONE change record', async () => {
    const records = await v.log();
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(record?.op).toBe('put');
    expect(record?.id).toBe(version);
    expect(record?.del).toEqual([]);
    expect(record?.put.map((e) => e.path).sort()).toEqual([...files.keys()].map((rel) => `/m/tiny/${rel}`).sort());
  });

  it('stat --json has size, version, sha256, chunks and mtime; stat without --json shows them too', async () => {
    const [human, ...stats] = await Promise.all([
      v.ferry('stat', '/m/tiny/model-00001-of-00002.safetensors'),
      ...PICKED.map((rel) => v.ferry('stat', `/m/tiny/${rel}`, '--json')),
    ]);
    for (const [i, rel] of PICKED.entries()) {
      const bytes = files.get(rel) as Buffer;
      const stat = stats[i] as FerryResult;
      expectSuccess(stat);
      expect(lines(stat.stdout)).toHaveLength(1);
      const entry = jsonResult(stat);
      expect(entry).toMatchObject({
        path: `/m/tiny/${rel}`,
        size: bytes.length,
        version,
        sha256: sha256Hex(bytes),
        chunkCount: Math.ceil(bytes.length / CHUNK),
      });
      expect(entry.mtime).toBeTypeOf('number');
      const chunks = entry.chunks as Array<{ id: string; size: number }>;
      expect(chunks.reduce((n, c) => n + c.size, 0)).toBe(bytes.length);
      for (const [j, c] of chunks.entries()) {
        expect(c.id).toBe(`sha256-${sha256Hex(bytes.subarray(j * CHUNK, j * CHUNK + c.size))}`);
      }
    }
    expectSuccess(human as FerryResult);
    for (const field of ['path:', 'size:', `version:  ${version}`, 'sha256:', 'chunks:   4 ', 'mtime:']) {
      expect(human?.stdout).toContain(field);
    }
  });

  it('cat writes the exact bytes to stdout', async () => {
    const [dir, ...cats] = await Promise.all(['/m/tiny', ...PICKED.map((rel) => `/m/tiny/${rel}`)].map((p) => v.ferry('cat', p)));
    for (const [i, rel] of PICKED.entries()) {
      const cat = cats[i] as FerryResult;
      const bytes = files.get(rel) as Buffer;
      expect(cat.code, cat.stderr).toBe(0);
      expect(cat.stderr).toBe('');
      expect(cat.stdoutBytes.equals(bytes), `${rel}: ${cat.stdoutBytes.length} bytes, expected ${bytes.length}`).toBe(true);
    }
    expectOneLineError(dir as FerryResult, 1, 'is a directory');

    // A reader that goes away early (`ferry cat … | head -c 100`) ends it quietly, as SIGPIPE
    // would. (4 MiB: more than a pipe's socket buffers take, so the cat cannot finish first.)
    const early = spawnFerry(['cat', '/m/tiny/model-00002-of-00002.safetensors'], { config: v.config });
    early.child.stdout?.once('data', () => early.child.stdout?.destroy());
    const cut = await early.result;
    expect({ code: cut.code, stderr: cut.stderr }).toEqual({ code: 141, stderr: '' });
  });

  it('ls lists direct children (a directory once, with a slash), -R every file below; --json is one object per line', async () => {
    const [ls, json, rec, root] = await Promise.all([
      v.ferry('ls', '/m/tiny'),
      v.ferry('ls', '/m/tiny', '--json'),
      v.ferry('ls', '-R', '/m', '--json'),
      v.ferry('ls', '--json'),
    ]);
    const direct = [
      'config.json',
      'empty.txt',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer/',
    ].map((n) => `/m/tiny/${n}`);

    expectSuccess(ls);
    expect(lines(ls.stdout).map((l) => l.trim().split(/\s+/).at(-1))).toEqual(direct);

    expectSuccess(json);
    const items = jsonLines(json);
    expect(items.map((i) => `${i.path}${i.kind === 'dir' ? '/' : ''}`)).toEqual(direct);
    for (const item of items) {
      if (item.kind === 'file') {
        const bytes = files.get((item.path as string).slice('/m/tiny/'.length)) as Buffer;
        expect(item).toMatchObject({ size: bytes.length, sha256: sha256Hex(bytes), version });
      }
    }

    expectSuccess(rec);
    expect(jsonLines(rec).map((i) => i.path)).toEqual([...files.keys()].map((rel) => `/m/tiny/${rel}`).sort());

    expectSuccess(root);
    expect(jsonLines(root)).toEqual([{ kind: 'dir', path: '/m' }]);
  });
});

describe('ferry put again, mv and rm', () => {
  it('an unchanged folder adds no record, a changed file one; mv and rm -R are one record each', async () => {
    const v = await freshVolume();
    expectSuccess(await v.ferry('put', model, '/m/tiny'));
    expectSuccess(await v.ferry('put', model, '/m/tiny'));
    expect(await v.log()).toHaveLength(1);
    const changed = join(work, `changed-${v.volume}`);
    await writeFolder(changed, new Map([...files, ['config.json', Buffer.from('{"hidden_size":128}\n')]]));
    expectSuccess(await v.ferry('put', changed, '/m/tiny'));
    const afterPut = await v.log();
    expect(afterPut).toHaveLength(2);
    expect(afterPut[1]?.put.map((e) => e.path)).toEqual(['/m/tiny/config.json']);

    const mv = await v.ferry('mv', '/m/tiny', '/m/tiny-old', '--json');
    expectSuccess(mv);
    expect(jsonResult(mv)).toMatchObject({ command: 'mv', from: '/m/tiny', to: '/m/tiny-old', moved: files.size });
    const [gone, cat, listed] = await Promise.all([
      v.ferry('stat', '/m/tiny/config.json'),
      v.ferry('cat', '/m/tiny-old/config.json'),
      v.ferry('ls', '-R', '/m', '--json'),
    ]);
    expectOneLineError(gone, 1, 'no such file');
    expect(cat.stdout).toBe('{"hidden_size":128}\n');
    expect(jsonLines(listed).map((i) => i.path)).toEqual([...files.keys()].map((rel) => `/m/tiny-old/${rel}`).sort());

    // A file too; onto an existing path is refused; rm of a directory without -R is a usage mistake.
    expectSuccess(await v.ferry('mv', '/m/tiny-old/empty.txt', '/m/empty.txt'));
    const [ls, onto, rmDir] = await Promise.all([
      v.ferry('ls', '/m'),
      v.ferry('mv', '/m/empty.txt', '/m/tiny-old/config.json'),
      v.ferry('rm', '/m/tiny-old'),
    ]);
    expect(lines(ls.stdout).map((l) => l.trim().split(/\s+/).at(-1))).toEqual(['/m/empty.txt', '/m/tiny-old/']);
    expectOneLineError(onto, 1, 'already exists');
    expectOneLineError(rmDir, 2, 'is a directory');

    const rm = await v.ferry('rm', '-R', '/m/tiny-old', '--json');
    expectSuccess(rm);
    expect(jsonResult(rm)).toMatchObject({ command: 'rm', path: '/m/tiny-old', removed: files.size - 1 });
    const [lsGone, rmFile] = await Promise.all([v.ferry('ls', '/m/tiny-old'), v.ferry('rm', '/m/empty.txt')]);
    expectOneLineError(lsGone, 1, 'no such file or directory');
    expectSuccess(rmFile);
    const empty = await v.ferry('ls', '-R', '/');
    expectSuccess(empty);
    expect(empty.stdout).toBe('');

    const records = await v.log();
    expect(records.map((r) => r.op)).toEqual(['put', 'put', 'rename', 'rename', 'delete', 'delete']);
    expect(records[2]?.del).toHaveLength(files.size);
    expect(records[2]?.put).toHaveLength(files.size);
    expect(records[4]?.del).toHaveLength(files.size - 1);
  });
});
