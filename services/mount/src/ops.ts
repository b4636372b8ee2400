import type { Entry, Logger } from '@ferry/core';
import { messageOf } from '@ferry/core';
import { Errno, errnoOf, wantsWrite } from './errno.js';
import type { FuseOps, FuseStat } from './fuse.js';
import type { OpenFiles } from './handles.js';
import type { MountMetrics } from './metrics.js';
import type { MountNode, Namespace } from './namespace.js';

export interface OpsOptions {
  namespace: Namespace;
  files: OpenFiles;
  metrics: MountMetrics;
  logger: Logger;
  /** Owner shown for every file (the mounting user). */
  uid: number;
  gid: number;
  /** Time shown for directories (they have none of their own). */
  mountedAt: Date;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(Errno).map(([name, code]) => [code, name]));
const BLOCK = 512;

function fileStat(entry: Entry, uid: number, gid: number): FuseStat {
  const time = new Date(entry.mtime);
  return {
    mode: 0o100444,
    size: entry.size,
    mtime: time,
    atime: time,
    ctime: time,
    nlink: 1,
    uid,
    gid,
    blocks: Math.ceil(entry.size / BLOCK),
    blksize: 128 * 1024,
  };
}

function dirStat(time: Date, uid: number, gid: number): FuseStat {
  return { mode: 0o40555, size: 4096, mtime: time, atime: time, ctime: time, nlink: 2, uid, gid, blocks: 8, blksize: 4096 };
}

/**
 * The FUSE operations over the namespace and the open files: lookups and listings from the
 * region's metadata, reads from the pinned version of each open file, and EROFS for every way of
 * changing anything. Each call is counted and timed by operation and result.
 */
export function createOps(options: OpsOptions): FuseOps {
  const { namespace, files, metrics, logger, uid, gid } = options;
  const stat = (node: MountNode): FuseStat =>
    node.kind === 'file' ? fileStat(node.entry, uid, gid) : dirStat(options.mountedAt, uid, gid);

  /** Run one call: its code (0 or -errno) is counted; unexpected failures are logged (EIO). */
  function call<T>(op: string, work: () => Promise<{ code: number; value?: T }>, reply: (code: number, value?: T) => void): void {
    const started = process.hrtime.bigint();
    work()
      .catch((err: unknown) => {
        // A read fails only for want of a good chunk (a missing one included): EIO, never ENOENT.
        const code = op === 'read' ? Errno.EIO : errnoOf(err);
        if (code === Errno.EIO && op !== 'read') logger.error({ op, reason: messageOf(err) }, `${op} failed: EIO`);
        return { code, value: undefined };
      })
      .then(({ code, value }) => {
        metrics.ops.inc({ op, result: code >= 0 ? 'ok' : (ERRNO_NAMES.get(code) ?? String(-code)) });
        metrics.seconds.observe({ op }, Number(process.hrtime.bigint() - started) / 1e9);
        reply(code, value);
      });
  }

  const readOnly =
    (op: string) =>
    (...args: unknown[]): void => {
      metrics.ops.inc({ op, result: 'EROFS' });
      (args.at(-1) as (code: number) => void)(Errno.EROFS);
    };

  return {
    init: (cb) => cb(0),
    statfs: (_path, cb) =>
      cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 }),
    getattr: (path, cb) =>
      call(
        'getattr',
        async () => {
          if (path === '/') return { code: 0, value: dirStat(options.mountedAt, uid, gid) };
          const node = await namespace.lookup(path);
          return node ? { code: 0, value: stat(node) } : { code: Errno.ENOENT };
        },
        cb,
      ),
    access: (path, _mode, cb) =>
      call('access', async () => ({ code: path === '/' || (await namespace.lookup(path)) ? 0 : Errno.ENOENT }), cb),
    readdir: (path, cb) =>
      call(
        'readdir',
        async () => {
          const children = await namespace.readdir(path);
          return { code: 0, value: ['.', '..', ...children.map((c) => c.name)] };
        },
        (code, names) => cb(code, names),
      ),
    opendir: (path, _flags, cb) =>
      call(
        'opendir',
        async () => {
          if (path === '/') return { code: 0, value: 0 };
          const node = await namespace.lookup(path);
          if (!node) return { code: Errno.ENOENT };
          return node.kind === 'dir' ? { code: 0, value: 0 } : { code: Errno.ENOTDIR };
        },
        cb,
      ),
    releasedir: (_path, _fd, cb) => cb(0),
    open: (path, flags, cb) =>
      call(
        'open',
        async () => {
          if (wantsWrite(flags)) return { code: Errno.EROFS };
          const entry = await namespace.openEntry(path);
          return { code: 0, value: files.open(entry) };
        },
        cb,
      ),
    read: (_path, fd, buf, len, pos, cb) =>
      call(
        'read',
        async () => {
          const n = await files.read(fd, buf, len, pos);
          if (n === undefined) return { code: Errno.EBADF };
          metrics.bytesRead.inc(n);
          return { code: n };
        },
        (code) => cb(code),
      ),
    release: (_path, fd, cb) => {
      files.release(fd);
      cb(0);
    },
    readlink: (_path, cb) => cb(Errno.EINVAL),
    getxattr: (_path, _name, _position, cb) => cb(Errno.ENODATA),
    listxattr: (_path, cb) => cb(0, []),
    write: readOnly('write'),
    create: readOnly('create'),
    truncate: readOnly('truncate'),
    ftruncate: readOnly('ftruncate'),
    utimens: readOnly('utimens'),
    chmod: readOnly('chmod'),
    chown: readOnly('chown'),
    mknod: readOnly('mknod'),
    mkdir: readOnly('mkdir'),
    rmdir: readOnly('rmdir'),
    unlink: readOnly('unlink'),
    rename: readOnly('rename'),
    link: readOnly('link'),
    symlink: readOnly('symlink'),
    setxattr: readOnly('setxattr'),
    removexattr: readOnly('removexattr'),
  };
}
