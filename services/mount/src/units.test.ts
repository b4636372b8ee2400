import { createHash, randomBytes } from 'node:crypto';
import { type ChunkRef, type Entry, InvalidPathError, NotFoundError, nativeChunkId, parseConfig, UnavailableError } from '@ferry/core';
import type { ListOptions, ListPage } from '@ferry/meta';
import { describe, expect, it } from 'vitest';
import { Errno, errnoOf, wantsWrite } from './errno.js';
import { OpenFiles } from './handles.js';
import { parseMountInfo } from './mountpoint.js';
import { Namespace, type NamespaceMeta } from './namespace.js';

function fileOf(path: string, sizes: number[], version = '1-0'): { entry: Entry; chunks: Map<string, Buffer> } {
  const chunks = new Map<string, Buffer>();
  const refs: ChunkRef[] = sizes.map((size) => {
    const bytes = randomBytes(size);
    const id = nativeChunkId(createHash('sha256').update(bytes).digest('hex'));
    chunks.set(id, bytes);
    return { id, size };
  });
  const size = sizes.reduce((a, b) => a + b, 0);
  return { entry: { path, size, mtime: 0, version, chunkSize: sizes[0] ?? 1, chunks: refs }, chunks };
}

describe('OpenFiles', () => {
  it('reads any range of the version a handle opened, across chunk edges', async () => {
    const a = fileOf('/f', [10, 10, 5]);
    const files = new OpenFiles({ fetch: async (ref) => a.chunks.get(ref.id) as Buffer, prefetch: 0 });
    const whole = Buffer.concat(a.entry.chunks.map((c) => a.chunks.get(c.id) as Buffer));
    const fh = files.open(a.entry);
    for (const [pos, len] of [
      [0, 25],
      [3, 9],
      [9, 2],
      [19, 100],
      [24, 1],
    ] as const) {
      const buf = Buffer.alloc(len);
      const n = await files.read(fh, buf, len, pos);
      expect(buf.subarray(0, n)).toEqual(whole.subarray(pos, pos + len));
    }
    expect(await files.read(fh, Buffer.alloc(4), 4, 25)).toBe(0);
    expect(await files.read(fh + 1, Buffer.alloc(4), 4, 0)).toBeUndefined();
    expect(files.release(fh)).toBe(true);
    expect(files.size).toBe(0);
  });

  it('fetches the chunks after a sequential read ahead of time, each once', async () => {
    const a = fileOf('/f', [4, 4, 4, 4, 4, 4]);
    const asked: number[] = [];
    const files = new OpenFiles({
      fetch: async (ref, ctx) => {
        asked.push(ctx.offset);
        return a.chunks.get(ref.id) as Buffer;
      },
      prefetch: 2,
    });
    const fh = files.open(a.entry);
    await files.read(fh, Buffer.alloc(4), 4, 0);
    expect(asked.sort((x, y) => x - y)).toEqual([0, 4, 8]);
    await files.read(fh, Buffer.alloc(4), 4, 4);
    expect([...new Set(asked)].sort((x, y) => x - y)).toEqual([0, 4, 8, 12]);
    // A jump elsewhere is not sequential: nothing more ahead.
    asked.length = 0;
    await files.read(fh, Buffer.alloc(2), 2, 22);
    expect(asked).toEqual([20]);
  });

  it('logs an unreadable chunk once and rejects the read', async () => {
    const a = fileOf('/f', [4, 4]);
    const lines: unknown[] = [];
    const logger = { error: (obj: unknown) => lines.push(obj), warn() {}, info() {}, debug() {}, child: () => logger };
    const files = new OpenFiles({
      fetch: async () => {
        throw new NotFoundError('gone');
      },
      prefetch: 0,
      logger,
    });
    const fh = files.open(a.entry);
    await expect(files.read(fh, Buffer.alloc(8), 8, 0)).rejects.toThrow('gone');
    await expect(files.read(fh, Buffer.alloc(8), 8, 0)).rejects.toThrow('gone');
    expect(lines).toHaveLength(2); // one per chunk, not per read
    expect(lines[0]).toMatchObject({ chunk: a.entry.chunks[0]?.id, path: '/f' });
  });
});

function fakeMeta(paths: string[], calls: string[]): NamespaceMeta {
  const entries = new Map(paths.map((p) => [p, fileOf(p, [1]).entry]));
  return {
    async tryStat(path) {
      calls.push(`stat ${path}`);
      return entries.get(path);
    },
    async list(dir: string, _options?: ListOptions): Promise<ListPage> {
      calls.push(`list ${dir}`);
      const prefix = dir === '/' ? '/' : `${dir}/`;
      const names = new Map<string, ListPage['items'][number]>();
      for (const [p, entry] of entries) {
        if (!p.startsWith(prefix)) continue;
        const rest = p.slice(prefix.length);
        const name = rest.split('/')[0] as string;
        names.set(name, rest.includes('/') ? { kind: 'dir', path: `${prefix}${name}` } : { kind: 'file', entry });
      }
      if (names.size === 0 && dir !== '/') throw new NotFoundError(`list ${dir}: no such file or directory`);
      return { items: [...names.values()] };
    },
  };
}

describe('Namespace', () => {
  it('maps mount paths under the base and tells files from directories', async () => {
    const calls: string[] = [];
    const ns = new Namespace({ meta: fakeMeta(['/models/m/a.bin', '/models/m/sub/b.bin'], calls), base: '/models', ttlMs: 1000 });
    expect(ns.volumePath('/')).toBe('/models');
    expect(ns.volumePath('/m/a.bin')).toBe('/models/m/a.bin');
    expect((await ns.lookup('/m/a.bin'))?.kind).toBe('file');
    expect(await ns.lookup('/m/sub')).toEqual({ kind: 'dir' });
    expect(await ns.lookup('/m/none')).toBeUndefined();
    expect((await ns.readdir('/m')).map((c) => `${c.name}:${c.node.kind}`)).toEqual(['a.bin:file', 'sub:dir']);
    await expect(ns.openEntry('/m/sub')).rejects.toThrow(/is a directory/);
    expect(() => ns.volumePath('/m/../x')).toThrow(InvalidPathError);
  });

  it('remembers a lookup for the ttl, then asks again', async () => {
    let now = 0;
    const calls: string[] = [];
    const ns = new Namespace({ meta: fakeMeta(['/a'], calls), base: '/', ttlMs: 1000, now: () => now });
    await Promise.all([ns.lookup('/a'), ns.lookup('/a')]);
    await ns.lookup('/a');
    expect(calls).toEqual(['stat /a']);
    now = 1500;
    await ns.lookup('/a');
    expect(calls).toEqual(['stat /a', 'stat /a']);
    // A listing fills the cache for the names it saw.
    await ns.readdir('/');
    now = 1600;
    await ns.lookup('/a');
    expect(calls).toEqual(['stat /a', 'stat /a', 'list /']);
  });
});

describe('errno and flags', () => {
  it('maps missing names to ENOENT and everything else to EIO', () => {
    expect(errnoOf(new NotFoundError('x'))).toBe(Errno.ENOENT);
    expect(errnoOf(new InvalidPathError('x'))).toBe(Errno.ENOENT);
    expect(errnoOf(new UnavailableError('redis down'))).toBe(Errno.EIO);
    expect(errnoOf(new Error('bug'))).toBe(Errno.EIO);
  });

  it('tells opens for writing from reads', () => {
    expect(wantsWrite(0)).toBe(false); // O_RDONLY
    expect(wantsWrite(0o100000)).toBe(false); // O_RDONLY | O_LARGEFILE
    expect(wantsWrite(1)).toBe(true); // O_WRONLY
    expect(wantsWrite(2)).toBe(true); // O_RDWR
    expect(wantsWrite(0o1000)).toBe(true); // O_TRUNC
    expect(wantsWrite(0o2000)).toBe(true); // O_APPEND
  });
});

describe('parseMountInfo', () => {
  it('reads mount points (with escaped spaces), types and sources', () => {
    const text = [
      '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '98 22 0:45 / /tmp/my\\040mnt rw,nosuid,nodev,relatime shared:60 - fuse.ferry ferry:models rw,user_id=0,group_id=0',
    ].join('\n');
    expect(parseMountInfo(text)).toEqual([
      { mountpoint: '/', fstype: 'ext4', source: '/dev/vda' },
      { mountpoint: '/tmp/my mnt', fstype: 'fuse.ferry', source: 'ferry:models' },
    ]);
  });
});

describe('the mount section of the config', () => {
  const base = { volume: 'models', source: 'src', regions: { src: { store: 'file:///tmp/x', redis: 'redis://127.0.0.1:6379' } } };

  it('has defaults, and takes durations like 500ms and 2s', () => {
    expect(parseConfig(base).mount).toEqual({
      attrTimeout: 1000,
      opTimeout: 60_000,
      stopTimeout: 10_000,
      listen: '127.0.0.1:9400',
      open: false,
    });
    const m = parseConfig({ ...base, mount: { attrTimeout: '500ms', stopTimeout: '2s', opTimeout: '1.5m' } }).mount;
    expect([m.attrTimeout, m.stopTimeout, m.opTimeout]).toEqual([500, 2000, 90_000]);
  });

  it('names the field of a bad value', () => {
    expect(() => parseConfig({ ...base, mount: { attrTimeout: 'soon' } })).toThrow(/mount\.attrTimeout: invalid duration "soon"/);
    expect(() => parseConfig({ ...base, mount: { attrTimeout: '2m' } })).toThrow(/mount\.attrTimeout: must be between 0s and 60s/);
  });
});
