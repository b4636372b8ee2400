import { createHash, randomBytes } from 'node:crypto';
import {
  type ChunkRef,
  type Entry,
  InvalidPathError,
  NotFoundError,
  nativeChunkId,
  parseConfig,
  silentLogger,
  UnavailableError,
} from '@ferry/core';
import type { ListOptions, ListPage } from '@ferry/meta';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { buildApp } from './app.js';
import { Errno, errnoOf, wantsWrite } from './errno.js';
import { FuseOp, type FuseReplies } from './fuse.js';
import { OpenFiles } from './handles.js';
import { Inodes, ROOT_INO } from './inodes.js';
import { createMetrics } from './metrics.js';
import { parseMountInfo } from './mountpoint.js';
import { Namespace, type NamespaceMeta } from './namespace.js';
import { createOps } from './ops.js';

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

/** Replies recorded as [request, kind, value] instead of sent to a kernel. */
function recordingReplies(): {
  replies: FuseReplies;
  log: Array<[bigint, string, unknown]>;
  next: () => Promise<[bigint, string, unknown]>;
} {
  const log: Array<[bigint, string, unknown]> = [];
  const waiting: Array<(r: [bigint, string, unknown]) => void> = [];
  const push = (entry: [bigint, string, unknown]) => {
    log.push(entry);
    waiting.shift()?.(entry);
  };
  let seen = 0;
  return {
    log,
    next: () => {
      const at = seen++;
      return at < log.length ? Promise.resolve(log[at] as [bigint, string, unknown]) : new Promise((r) => waiting.push(r));
    },
    replies: {
      err: (req, errno) => push([req, 'err', errno]),
      entry: (req, attr) => push([req, 'entry', attr]),
      attr: (req, attr) => push([req, 'attr', attr]),
      open: (req, fh, o) => push([req, 'open', { fh, ...o }]),
      data: (req, parts) => push([req, 'data', Buffer.concat(parts)]),
      dir: (req, _size, names, _inos, _modes, start) => push([req, 'dir', names.slice(start)]),
    },
  };
}

describe('Inodes', () => {
  it('gives each version of a path its own inode, and drops an inode when the kernel forgets it', () => {
    const inodes = new Inodes();
    const v1 = fileOf('/m/a.bin', [1], '1-0').entry;
    const v2 = { ...v1, version: '2-0' };
    const a1 = inodes.lookup({ kind: 'file', path: '/m/a.bin', entry: v1 });
    expect(inodes.lookup({ kind: 'file', path: '/m/a.bin', entry: v1 }).ino).toBe(a1.ino);
    const a2 = inodes.lookup({ kind: 'file', path: '/m/a.bin', entry: v2 });
    expect(a2.ino).not.toBe(a1.ino);
    expect(a1.ino).not.toBe(ROOT_INO);
    inodes.forget(a1.ino, 1);
    expect(inodes.get(a1.ino)).toBeDefined();
    inodes.forget(a1.ino, 1);
    expect(inodes.get(a1.ino)).toBeUndefined();
    // A forgotten version looked up again gets a new number (numbers are not reused).
    expect(inodes.lookup({ kind: 'file', path: '/m/a.bin', entry: v1 }).ino).toBeGreaterThan(a2.ino);
    inodes.forget(ROOT_INO, 10);
    expect(inodes.get(ROOT_INO)).toBeDefined();
  });
});

describe('the request handler', () => {
  it('pins the version an inode was looked up with: an open after the path changed still reads it', async () => {
    const v1 = fileOf('/m/a.bin', [4, 4], '1-0');
    const v2 = fileOf('/m/a.bin', [3], '2-0');
    let current = v1.entry;
    const meta: NamespaceMeta = {
      tryStat: async (path) => (path === '/m/a.bin' ? current : undefined),
      list: async (dir) => {
        if (dir === '/') return { items: [{ kind: 'dir', path: '/m' }] };
        if (dir === '/m') return { items: [{ kind: 'file', entry: current }] };
        throw new NotFoundError(`${dir}: no such directory`);
      },
    };
    const chunks = new Map([...v1.chunks, ...v2.chunks]);
    const files = new OpenFiles({ fetch: async (ref) => chunks.get(ref.id) as Buffer, prefetch: 0 });
    const { replies, next } = recordingReplies();
    const handle = createOps({
      namespace: new Namespace({ meta, base: '/', ttlMs: 0 }),
      inodes: new Inodes(),
      files,
      replies,
      metrics: createMetrics({ volume: 'v', region: 'r', openFiles: () => files.size }),
      logger: silentLogger,
      attrTimeoutMs: 1000,
      opTimeoutMs: 5000,
      directIo: false,
      uid: 1,
      gid: 1,
      mountedAt: new Date(0),
    });
    handle(FuseOp.LOOKUP, 1n, ROOT_INO, 'm', 0, 0, 0);
    const [, kind, dir] = await next();
    expect(kind).toBe('entry');
    const dirIno = (dir as { ino: number }).ino;
    handle(FuseOp.LOOKUP, 2n, dirIno, 'a.bin', 0, 0, 0);
    const old = (await next())[2] as { ino: number; size: number };
    expect(old.size).toBe(8);
    current = v2.entry;
    handle(FuseOp.LOOKUP, 3n, dirIno, 'a.bin', 0, 0, 0);
    const fresh = (await next())[2] as { ino: number; size: number };
    expect(fresh).toMatchObject({ size: 3 });
    expect(fresh.ino).not.toBe(old.ino);
    // The old inode opens and reads version 1, with its pages kept; the new one reads version 2.
    handle(FuseOp.OPEN, 4n, old.ino, undefined, 0, 0, 0);
    const opened = (await next())[2] as { fh: number; keepCache: boolean; directIo: boolean };
    expect(opened).toMatchObject({ keepCache: true, directIo: false });
    handle(FuseOp.READ, 5n, old.ino, undefined, 100, 0, opened.fh);
    expect((await next())[2]).toEqual(Buffer.concat([...v1.chunks.values()]));
    handle(FuseOp.OPEN, 6n, fresh.ino, undefined, 0, 0, 0);
    const opened2 = (await next())[2] as { fh: number };
    handle(FuseOp.READ, 7n, fresh.ino, undefined, 100, 0, opened2.fh);
    expect((await next())[2]).toEqual(Buffer.concat([...v2.chunks.values()]));
    // Opening for writing, a name that is not there, an unknown inode.
    handle(FuseOp.OPEN, 8n, fresh.ino, undefined, 0o1, 0, 0);
    expect(await next()).toEqual([8n, 'err', 30]);
    handle(FuseOp.LOOKUP, 9n, dirIno, 'none', 0, 0, 0);
    expect(await next()).toEqual([9n, 'err', 2]);
    handle(FuseOp.GETATTR, 10n, 9999, undefined, 0, 0, 0);
    expect(await next()).toEqual([10n, 'err', 2]);
    // A listing: the dot entries, then the names.
    handle(FuseOp.OPENDIR, 11n, dirIno, undefined, 0, 0, 0);
    const listing = (await next())[2] as { fh: number };
    handle(FuseOp.READDIR, 12n, dirIno, undefined, 4096, 1, listing.fh);
    expect(await next()).toEqual([12n, 'dir', ['..', 'a.bin']]);
  });
});

describe('a reply the binding cannot make', () => {
  it('is logged and counted as EIO (the binding answered the kernel EIO), and the next requests go on', async () => {
    const a = fileOf('/a.bin', [4]);
    const meta: NamespaceMeta = {
      tryStat: async (path) => (path === '/a.bin' ? a.entry : undefined),
      list: async () => ({ items: [{ kind: 'file', entry: a.entry }] }),
    };
    const files = new OpenFiles({ fetch: async (ref) => a.chunks.get(ref.id) as Buffer, prefetch: 0 });
    const { replies, next } = recordingReplies();
    const refused = Object.assign(new Error('replyData: expected an array of buffers'), { code: 'EREPLY' });
    const failing: FuseReplies = {
      ...replies,
      data: () => {
        throw refused;
      },
      err: (req, errno) => {
        if (req === 5n) throw refused;
        replies.err(req, errno);
      },
    };
    const errors: Array<[object, string | undefined]> = [];
    const logger = { ...silentLogger, error: (obj: object, msg?: string) => errors.push([obj, msg]) } as typeof silentLogger;
    const metrics = createMetrics({ volume: 'v', region: 'r', openFiles: () => files.size });
    const handle = createOps({
      namespace: new Namespace({ meta, base: '/', ttlMs: 0 }),
      inodes: new Inodes(),
      files,
      replies: failing,
      metrics,
      logger,
      attrTimeoutMs: 1000,
      opTimeoutMs: 5000,
      directIo: false,
      uid: 1,
      gid: 1,
      mountedAt: new Date(0),
    });
    handle(FuseOp.LOOKUP, 1n, ROOT_INO, 'a.bin', 0, 0, 0);
    const ino = ((await next())[2] as { ino: number }).ino;
    handle(FuseOp.OPEN, 2n, ino, undefined, 0, 0, 0);
    const { fh } = (await next())[2] as { fh: number };
    handle(FuseOp.READ, 3n, ino, undefined, 4, 0, fh);
    await new Promise((r) => setTimeout(r, 20));
    expect(errors).toEqual([[{ op: 'read', reason: refused.message }, 'read reply failed: EIO']]);
    const counted = (await metrics.registry.getSingleMetric('ferry_mount_ops_total')?.get())?.values ?? [];
    expect(counted.find((v) => v.labels.op === 'read')).toMatchObject({ labels: { result: 'EIO' }, value: 1 });
    // A release whose answer fails is logged too, and the handle is gone all the same.
    expect(() => handle(FuseOp.RELEASE, 5n, ino, undefined, 0, 0, fh)).not.toThrow();
    expect(errors.at(-1)?.[1]).toBe('release reply failed: EIO');
    expect(files.size).toBe(0);
    handle(FuseOp.GETATTR, 6n, ino, undefined, 0, 0, 0);
    expect((await next())[1]).toBe('attr');
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
  it('reads mount points (with escaped spaces), devices, types and sources', () => {
    const text = [
      '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '98 22 0:45 / /tmp/my\\040mnt rw,nosuid,nodev,relatime shared:60 - fuse.ferry ferry:models rw,user_id=0,group_id=0',
    ].join('\n');
    expect(parseMountInfo(text)).toEqual([
      { mountpoint: '/', device: '0:21', fstype: 'ext4', source: '/dev/vda' },
      { mountpoint: '/tmp/my mnt', device: '0:45', fstype: 'fuse.ferry', source: 'ferry:models' },
    ]);
  });
});

describe('the mount section of the config', () => {
  const base = { volume: 'models', source: 'src', regions: { src: { store: 'file:///tmp/x', redis: 'redis://127.0.0.1:6379' } } };

  it('has defaults, and takes durations like 500ms and 2s', () => {
    // No listen: unset is not the same as the default address set (see MOUNT_LISTEN_DEFAULT).
    expect(parseConfig(base).mount).toEqual({
      attrTimeout: 1000,
      opTimeout: 60_000,
      stopTimeout: 10_000,
      open: false,
    });
    expect(parseConfig({ ...base, mount: { listen: '127.0.0.1:9400' } }).mount.listen).toBe('127.0.0.1:9400');
    const m = parseConfig({ ...base, mount: { attrTimeout: '500ms', stopTimeout: '2s', opTimeout: '1.5m' } }).mount;
    expect([m.attrTimeout, m.stopTimeout, m.opTimeout]).toEqual([500, 2000, 90_000]);
  });

  it('names the field of a bad value', () => {
    expect(() => parseConfig({ ...base, mount: { attrTimeout: 'soon' } })).toThrow(/mount\.attrTimeout: invalid duration "soon"/);
    expect(() => parseConfig({ ...base, mount: { attrTimeout: '2m' } })).toThrow(/mount\.attrTimeout: must be between 0s and 60s/);
  });
});

describe('the operations endpoint', () => {
  it('opens /healthz by its route, however the path is spelled, and guards /metrics under every spelling', async () => {
    const app = buildApp({ registry: new Registry(), token: 'metrics-token', open: false, health: async () => ({ ok: true }) });
    try {
      for (const url of ['/healthz', '/%68ealthz', '/healthz?x=/metrics']) expect((await app.inject({ url })).statusCode, url).toBe(200);
      for (const url of ['/metrics', '/%6Detrics', '/%6detrics', '/metrics?/healthz', '/%2568ealthz', '/healthz/../metrics']) {
        expect((await app.inject({ url })).statusCode, url).toBe(401);
      }
      const auth = { authorization: 'Bearer metrics-token' };
      expect((await app.inject({ url: '/%6Detrics', headers: auth })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
