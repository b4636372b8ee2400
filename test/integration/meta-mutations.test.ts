import {
  ConflictError,
  type Entry,
  InvalidArgumentError,
  InvalidPathError,
  type NewEntry,
  NotFoundError,
  nativeChunkId,
  sha256Hex,
} from '@ferry/core';
import { connectRedis, encodeLogEntry, encodeStoredEntry, Meta, parseChangeRecord } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { uniqueName } from '../support/random.js';

const chunk = (seed: string) => nativeChunkId(sha256Hex(seed));

/** A file of `seeds.length` 4-byte chunks (one chunk per seed, repeats allowed). */
function file(path: string, seeds: string[] = [path]): NewEntry {
  return { path, size: 4 * seeds.length, mtime: 1_700_000_000_000, chunkSize: 4, chunks: seeds.map((s) => ({ id: chunk(s), size: 4 })) };
}

let redis: Redis;
let meta: Meta;

beforeEach(() => {
  redis ??= connectRedis(inject('redisUrl'), { name: 'meta-mutations' });
  meta = new Meta({ redis, volume: uniqueName('v') });
});

afterAll(async () => {
  await redis?.quit();
});

async function records() {
  return (await redis.xrange(meta.keys.log, '-', '+')).map((r) => parseChangeRecord(r));
}

async function paths(dir = '/') {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await meta.list(dir, { recursive: true, cursor, limit: 3 });
    out.push(...page.items.map((i) => (i.kind === 'file' ? i.entry.path : `${i.path}/`)));
    cursor = page.cursor;
  } while (cursor);
  return out;
}

describe('commit and stat', () => {
  it('stores entries with the record id as version, under the documented keys', async () => {
    const { version, entries } = await meta.commit([file('/m/a.bin', ['x', 'y']), file('/m/b.bin')]);
    expect(version).toMatch(/^\d+-\d+$/);
    expect(entries.map((e) => e.version)).toEqual([version, version]);
    const stat = await meta.stat('m/a.bin/');
    expect(stat).toEqual({ ...file('/m/a.bin', ['x', 'y']), version });
    expect(await redis.hexists(`ferry:{${meta.volume}}:entries`, '/m/a.bin')).toBe(1);
    expect(await redis.zscore(`ferry:{${meta.volume}}:paths`, '/m/b.bin')).toBe('0');
    expect(await meta.tryStat('/m/nope')).toBeUndefined();
  });

  it('reports a missing file and a directory with one line naming the path', async () => {
    await meta.commit([file('/m/a.bin')]);
    await expect(meta.stat('/m/nope')).rejects.toThrow(new NotFoundError('stat /m/nope: no such file'));
    await expect(meta.stat('/m')).rejects.toThrow(/^stat \/m: no such file; it is a directory$/);
    await expect(meta.stat('/m/../x')).rejects.toBeInstanceOf(InvalidPathError);
  });

  it('writes a batch of 50 entries as exactly one change record', async () => {
    const batch = Array.from({ length: 50 }, (_, i) => file(`/model/shard-${String(i).padStart(2, '0')}.safetensors`));
    const { version } = await meta.commit(batch);
    const log = await records();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ id: version, op: 'put', del: [], time: Number(version.split('-')[0]) });
    expect(log[0]?.put).toEqual(batch.map((e) => ({ ...e, version })));
  });

  it('replacing a file moves reference counts and times unreferenced chunks', async () => {
    await meta.commit([file('/a', ['x', 'x', 'y']), file('/b', ['y'])]);
    expect(await meta.refs.refCounts([chunk('x'), chunk('y'), chunk('z')])).toEqual([2, 2, 0]);
    const { version } = await meta.commit([file('/a', ['z', 'y'])]);
    expect(await meta.refs.refCounts([chunk('x'), chunk('y'), chunk('z')])).toEqual([0, 2, 1]);
    expect(await redis.hexists(meta.keys.refs, chunk('x'))).toBe(0);
    expect(await redis.zscore(meta.keys.unreferenced, chunk('x'))).toBe(version.split('-')[0]);
    await meta.commit([file('/c', ['x'])]);
    expect(await meta.refs.refCount(chunk('x'))).toBe(1);
    expect(await redis.zscore(meta.keys.unreferenced, chunk('x'))).toBeNull();
  });

  it('refuses a path that is a directory or under a file, also within the batch, applying nothing', async () => {
    await meta.commit([file('/d/f'), file('/g')]);
    const before = await records();
    await expect(meta.commit([file('/new'), file('/d')])).rejects.toThrow(new ConflictError('commit /d: is an existing directory'));
    await expect(meta.commit([file('/new'), file('/g/x/y')])).rejects.toThrow(new ConflictError('commit /g/x/y: /g is a file'));
    await expect(meta.commit([file('/p/q'), file('/p')])).rejects.toThrow(new ConflictError('commit /p/q: /p is a file in the same batch'));
    await expect(meta.commit([file('/p'), file('/p')])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await records()).toEqual(before);
    expect(await meta.tryStat('/new')).toBeUndefined();
  });

  it('validates entries before touching Redis', async () => {
    const bad: Array<[Partial<NewEntry>, RegExp]> = [
      [{ size: 5 }, /size 5 does not match its chunks \(4 bytes\)/],
      [{ chunks: [{ id: 'sha256-nothex' as never, size: 4 }] }, /invalid chunk id/],
      [{ path: '/' }, /the root is a directory/],
      [{ path: '/a/../b' }, /"\.\." segment/],
      [{ sha256: 'ABC' }, /sha256 must be 64 lowercase hex/],
      [
        {
          size: 8,
          chunks: [
            { id: chunk('a'), size: 3 },
            { id: chunk('b'), size: 5 },
          ],
        },
        /all but the last must be 4|expected 1\.\.4/,
      ],
    ];
    for (const [patch, message] of bad) await expect(meta.commit([{ ...file('/ok'), ...patch }])).rejects.toThrow(message);
    await expect(meta.commit([])).rejects.toThrow('commit: no entries');
    expect(await records()).toEqual([]);
  });

  it('keeps unusual but valid names exact (quotes, spaces, unicode, empty file)', async () => {
    const names = ['/q/"quoted"', '/q/with space', '/q/üñí©ødé 模型', "/q/it's"];
    const empty: NewEntry = { path: '/q/empty', size: 0, mtime: 1, chunkSize: 4, chunks: [] };
    const { version } = await meta.commit([...names.map((n) => file(n)), empty]);
    for (const n of names) expect((await meta.stat(n)).path).toBe(n);
    expect(await meta.stat('/q/empty')).toEqual({ ...empty, version });
    expect((await records())[0]?.put.map((e) => e.path)).toEqual([...names, '/q/empty']);
  });

  it('stores exactly the text of encodeStoredEntry / encodeLogEntry (the layout a mirror reuses)', async () => {
    const entries = [file('/l/"a"/b c', ['x', 'y']), { ...file('/l/ü'), sha256: 'a'.repeat(64) }];
    await meta.commit(entries);
    await meta.rename('/l', '/r');
    const [put, moved] = await redis.xrange(meta.keys.log, '-', '+');
    expect(put?.[1]).toEqual(['op', 'put', 'put', `[${entries.map(encodeLogEntry).join(',')}]`, 'del', '[]']);
    const renamed = entries.map((e) => ({ ...e, path: e.path.replace('/l/', '/r/') }));
    expect(moved?.[1][3]).toBe(`[${renamed.map(encodeLogEntry).join(',')}]`);
    for (const e of renamed)
      expect(await redis.hget(meta.keys.entries, e.path)).toBe(encodeStoredEntry({ ...e, version: moved?.[0] as string }));
  });
});

describe('delete', () => {
  it('removes a file as one record and releases its chunks', async () => {
    await meta.commit([file('/a', ['x']), file('/b', ['x'])]);
    const { version, removed } = await meta.delete('/a');
    expect(removed).toBe(1);
    expect(await meta.tryStat('/a')).toBeUndefined();
    expect(await meta.refs.refCount(chunk('x'))).toBe(1);
    expect((await records()).at(-1)).toEqual({ id: version, op: 'delete', put: [], del: ['/a'], time: expect.any(Number) });
  });

  it('removes a directory only with recursive', async () => {
    await meta.commit([file('/d/a', ['x']), file('/d/e/b', ['x', 'y']), file('/d2/c')]);
    await expect(meta.delete('/d')).rejects.toThrow(
      new InvalidArgumentError('delete /d: is a directory; remove it and everything below with -R (ferry rm -R)'),
    );
    const { removed } = await meta.delete('/d', { recursive: true });
    expect(removed).toBe(2);
    expect(await paths()).toEqual(['/d2/c']);
    expect(await meta.refs.refCounts([chunk('x'), chunk('y')])).toEqual([0, 0]);
    expect(await redis.zcard(meta.keys.unreferenced)).toBe(2);
    expect((await records()).at(-1)?.del).toEqual(['/d/a', '/d/e/b']);
  });

  it('reports nothing there, applying nothing', async () => {
    await meta.commit([file('/a')]);
    await expect(meta.delete('/nope')).rejects.toThrow(new NotFoundError('delete /nope: no such file or directory'));
    await expect(meta.delete('/nope', { recursive: true })).rejects.toBeInstanceOf(NotFoundError);
    expect(await records()).toHaveLength(1);
  });
});

describe('rename', () => {
  it('moves a file: one record (del + put), new version, same references', async () => {
    await meta.commit([file('/a', ['x'])]);
    const { version, moved } = await meta.rename('/a', '/b/c');
    expect(moved).toBe(1);
    expect(await meta.stat('/b/c')).toEqual({ ...file('/a', ['x']), path: '/b/c', version });
    expect(await meta.tryStat('/a')).toBeUndefined();
    expect(await meta.refs.refCount(chunk('x'))).toBe(1);
    const last = (await records()).at(-1);
    expect(last).toMatchObject({ id: version, op: 'rename', del: ['/a'] });
    expect(last?.put).toEqual([await meta.stat('/b/c')]);
  });

  it('moves a directory with everything under it', async () => {
    await meta.commit([file('/m/a', ['x']), file('/m/s/b', ['x', 'y']), file('/m2/c'), file('/m.txt')]);
    const refsBefore = await redis.hgetall(meta.keys.refs);
    const { version, moved } = await meta.rename('/m', '/n/m');
    expect(moved).toBe(2);
    expect(await paths()).toEqual(['/m.txt', '/m2/c', '/n/m/a', '/n/m/s/b']);
    expect((await meta.stat('/n/m/s/b')).version).toBe(version);
    expect((await meta.stat('/m2/c')).version).not.toBe(version);
    expect(await redis.hgetall(meta.keys.refs)).toEqual(refsBefore);
  });

  it('refuses an existing target, a move into itself, a file ancestor, a missing source', async () => {
    await meta.commit([file('/a/x'), file('/b'), file('/c/y')]);
    const before = await records();
    await expect(meta.rename('/a', '/b')).rejects.toThrow(new ConflictError('rename /a to /b: /b already exists'));
    await expect(meta.rename('/b', '/c')).rejects.toThrow(new ConflictError('rename /b to /c: /c already exists'));
    await expect(meta.rename('/a', '/a/z')).rejects.toThrow(new ConflictError('rename /a to /a/z: cannot move /a into itself'));
    await expect(meta.rename('/a', '/a')).rejects.toBeInstanceOf(ConflictError);
    await expect(meta.rename('/a', '/b/z')).rejects.toThrow(new ConflictError('rename /a to /b/z: /b is a file'));
    await expect(meta.rename('/nope', '/z')).rejects.toThrow(new NotFoundError('rename /nope: no such file or directory'));
    await expect(meta.rename('/', '/z')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await records()).toEqual(before);
  });

  it('refuses a move that would make a path longer than 1024 bytes', async () => {
    await meta.commit([file(`/a/${'x'.repeat(1000)}`)]);
    await expect(meta.rename('/a', `/${'y'.repeat(100)}`)).rejects.toBeInstanceOf(InvalidPathError);
    expect(await records()).toHaveLength(1);
  });
});

describe('list', () => {
  const tree = ['/a/b-c/y', '/a/b.txt', '/a/b/x', '/a/b/z/deep', '/a/b0', '/a/bz/q/r', '/a0', '/a.txt', '/top'];

  beforeEach(async () => {
    await meta.commit(tree.map((p) => file(p)));
  });

  const show = (items: Array<{ kind: 'file'; entry: Entry } | { kind: 'dir'; path: string }>) =>
    items.map((i) => (i.kind === 'file' ? i.entry.path : `${i.path}/`));

  it('lists direct children once each, files with their entries, in order', async () => {
    const page = await meta.list('/a');
    expect(show(page.items)).toEqual(['/a/b-c/', '/a/b.txt', '/a/b/', '/a/b0', '/a/bz/']);
    expect(page.cursor).toBeUndefined();
    expect(page.items[1]).toEqual({ kind: 'file', entry: expect.objectContaining({ path: '/a/b.txt', size: 4 }) });
    expect(show((await meta.list('/')).items)).toEqual(['/a.txt', '/a/', '/a0', '/top']);
  });

  it('pages with any limit to the same result', async () => {
    for (const recursive of [false, true]) {
      const all = show((await meta.list('/a', { recursive })).items);
      for (const limit of [1, 2, 3]) {
        const got: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await meta.list('/a', { recursive, limit, cursor });
          expect(page.items.length).toBeLessThanOrEqual(limit);
          got.push(...show(page.items));
          cursor = page.cursor;
        } while (cursor);
        expect(got).toEqual(all);
      }
    }
    expect(show((await meta.list('/a', { recursive: true })).items)).toEqual([
      '/a/b-c/y',
      '/a/b.txt',
      '/a/b/x',
      '/a/b/z/deep',
      '/a/b0',
      '/a/bz/q/r',
    ]);
  });

  it('lists a file as itself, and refuses a missing path or a foreign cursor', async () => {
    expect(show((await meta.list('/a/b.txt')).items)).toEqual(['/a/b.txt']);
    await expect(meta.list('/nope')).rejects.toThrow(new NotFoundError('list /nope: no such file or directory'));
    await expect(meta.list('/a', { cursor: '(/top' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(meta.list('/a', { limit: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    const empty = new Meta({ redis, volume: uniqueName('empty') });
    expect(await empty.list('/')).toEqual({ items: [] });
  });
});

describe('scripts that read a whole step before writing it', () => {
  it('count a path a mirror record names twice once, and a path deleted and put in one record as new', async () => {
    const { MirrorMeta } = await import('@ferry/meta');
    const mirror = new MirrorMeta({ redis, volume: uniqueName('m') });
    const at = (ms: number): Entry => ({ ...file('/a', ['x', 'y']), version: `${ms}-0` });
    await mirror.apply([{ id: '1000-0', op: 'put', put: [at(1000), at(1000)], del: [], time: 1000 }]);
    const refs = async () => Object.fromEntries(Object.entries(await redis.hgetall(mirror.keys.refs)).map(([k, v]) => [k, Number(v)]));
    expect(await refs()).toEqual({ [chunk('x')]: 1, [chunk('y')]: 1 });
    const b = { ...file('/a', ['y', 'z']), version: '2000-0' };
    await mirror.apply([{ id: '2000-0', op: 'put', put: [b], del: ['/a', '/a'], time: 2000 }]);
    expect(await refs()).toEqual({ [chunk('y')]: 1, [chunk('z')]: 1 });
    expect(await redis.zrange(mirror.keys.paths, 0, -1)).toEqual(['/a']);
    expect(await redis.smembers(mirror.keys.missing)).toEqual(expect.arrayContaining([chunk('y'), chunk('z')]));
    expect(await redis.scard(mirror.keys.missing)).toBe(2);
  });

  it('refuses a commit step that names a path twice, and writes nothing', async () => {
    await expect(meta.commit([file('/d/one'), file('/d/one')])).rejects.toThrow();
    expect(await redis.hlen(meta.keys.entries)).toBe(0);
    expect(await redis.xlen(meta.keys.log)).toBe(0);
  });
});
