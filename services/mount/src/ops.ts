import type { Entry, Logger } from '@ferry/core';
import { messageOf, NotFoundError } from '@ferry/core';
import { Errno, errnoOf, wantsWrite } from './errno.js';
import { type FuseAttr, type FuseHandler, FuseOp, type FuseReplies, type FuseRequest } from './fuse.js';
import type { OpenFiles } from './handles.js';
import { type Inode, type Inodes, ROOT_INO } from './inodes.js';
import type { MountMetrics } from './metrics.js';
import type { Namespace } from './namespace.js';

export interface OpsOptions {
  namespace: Namespace;
  inodes: Inodes;
  files: OpenFiles;
  replies: FuseReplies;
  metrics: MountMetrics;
  logger: Logger;
  /** How long the kernel trusts a name (and a directory's attributes), ms: changes show after at most this. */
  attrTimeoutMs: number;
  /** A request not answered within this is answered ETIMEDOUT, ms. */
  opTimeoutMs: number;
  /** Bypass the kernel page cache (no shared mmap); the default keeps each version's pages. */
  directIo: boolean;
  /** Owner shown for every file (the mounting user). */
  uid: number;
  gid: number;
  /** Time shown for directories (they have none of their own). */
  mountedAt: Date;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(Errno).map(([name, code]) => [code, name]));
const OP_NAMES = new Map<number, string>(Object.entries(FuseOp).map(([name, op]) => [op, name.toLowerCase()]));
const S_IFREG = 0o100000;
const S_IFDIR = 0o40000;
/** A file's attributes never change (a new version is a new inode): the kernel may keep them. */
const FILE_ATTR_SECONDS = 24 * 3600;
/** readdir's d_ino for names not looked up yet (libfuse's FUSE_UNKNOWN_INO). */
const UNKNOWN_INO = 0xffff_ffff;

interface Listing {
  names: string[];
  inos: number[];
  modes: number[];
}

type Outcome = { code: number; reply?: (req: FuseRequest) => void };

/**
 * The FUSE requests over the namespace, the inode table and the open files: lookups and listings
 * from the region's metadata, reads from the version an inode stands for, EROFS for opens that
 * would write (the binding refuses every other change itself). Each request is counted and timed
 * by operation and result, and answered exactly once — ETIMEDOUT when it takes longer than
 * `opTimeoutMs`.
 */
export function createOps(options: OpsOptions): FuseHandler {
  const { namespace, inodes, files, replies, metrics, logger, uid, gid } = options;
  const entrySeconds = options.attrTimeoutMs / 1000;
  const listings = new Map<number, Listing>();
  let nextListing = 1;

  const attrOf = (inode: Inode): FuseAttr => {
    const { node } = inode;
    if (node.kind === 'file') {
      const { size, mtime } = node.entry;
      return { ino: inode.ino, mode: S_IFREG | 0o444, size, mtimeMs: mtime, nlink: 1, uid, gid };
    }
    return { ino: inode.ino, mode: S_IFDIR | 0o555, size: 4096, mtimeMs: options.mountedAt.getTime(), nlink: 2, uid, gid };
  };
  const attrSeconds = (inode: Inode) => (inode.node.kind === 'file' ? FILE_ATTR_SECONDS : entrySeconds);
  const childPath = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

  /**
   * Send one answer. A reply the binding could not make was answered EIO by the binding itself:
   * logged here, and its code becomes EIO.
   */
  function send(op: string, req: FuseRequest, { code, reply }: Outcome): number {
    try {
      if (reply) reply(req);
      else replies.err(req, code === 0 ? 0 : -code);
      return code;
    } catch (err) {
      logger.error({ op, reason: messageOf(err) }, `${op} reply failed: EIO`);
      return Errno.EIO;
    }
  }

  /** Run one request: its code (0 or -errno) is counted; unexpected failures are logged (EIO). */
  function call(op: string, req: FuseRequest, work: () => Promise<Outcome>): void {
    const started = process.hrtime.bigint();
    let answered = false;
    const answer = (outcome: Outcome) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      const code = send(op, req, outcome);
      metrics.ops.inc({ op, result: code >= 0 ? 'ok' : (ERRNO_NAMES.get(code) ?? String(-code)) });
      metrics.seconds.observe({ op }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const timer = setTimeout(() => {
      logger.warn({ op, ms: options.opTimeoutMs }, `${op} not answered in time: ETIMEDOUT`);
      answer({ code: Errno.ETIMEDOUT });
    }, options.opTimeoutMs);
    work()
      .catch((err: unknown): Outcome => {
        // A read fails only for want of a good chunk (a missing one included): EIO, never ENOENT.
        const code = op === 'read' ? Errno.EIO : errnoOf(err);
        if (code === Errno.EIO && op !== 'read') logger.error({ op, reason: messageOf(err) }, `${op} failed: EIO`);
        return { code };
      })
      .then(answer);
  }

  const known = (ino: number): Inode => {
    const inode = inodes.get(ino);
    if (!inode) throw new NotFoundError(`inode ${ino} is not known`);
    return inode;
  };

  async function lookup(parentIno: number, name: string): Promise<Outcome> {
    const parent = inodes.get(parentIno);
    if (!parent) return { code: Errno.ENOENT };
    if (parent.node.kind !== 'dir') return { code: Errno.ENOTDIR };
    const path = childPath(parent.node.path, name);
    const node = await namespace.lookup(path);
    if (!node) return { code: Errno.ENOENT };
    const inode = inodes.lookup(node.kind === 'file' ? { kind: 'file', path, entry: node.entry } : { kind: 'dir', path });
    const attr = attrOf(inode);
    return { code: 0, reply: (req) => replies.entry(req, attr, entrySeconds, attrSeconds(inode)) };
  }

  async function opendir(ino: number): Promise<Outcome> {
    const inode = inodes.get(ino);
    if (!inode) return { code: Errno.ENOENT };
    if (inode.node.kind !== 'dir') return { code: Errno.ENOTDIR };
    const children = await namespace.readdir(inode.node.path);
    const listing: Listing = { names: ['.', '..'], inos: [ino, ino === ROOT_INO ? ROOT_INO : UNKNOWN_INO], modes: [S_IFDIR, S_IFDIR] };
    for (const child of children) {
      listing.names.push(child.name);
      listing.inos.push(UNKNOWN_INO);
      listing.modes.push(child.node.kind === 'file' ? S_IFREG : S_IFDIR);
    }
    const fh = nextListing++;
    listings.set(fh, listing);
    return { code: 0, reply: (req) => replies.open(req, fh, { directIo: false, keepCache: false }) };
  }

  async function open(ino: number, flags: number): Promise<Outcome> {
    if (wantsWrite(flags)) return { code: Errno.EROFS };
    const { node } = known(ino);
    if (node.kind !== 'file') return { code: Errno.EISDIR };
    const fh = files.open(node.entry as Entry);
    // An inode is one version, so its cached pages stay right for every later open of it.
    const directIo = options.directIo;
    return { code: 0, reply: (req) => replies.open(req, fh, { directIo, keepCache: !directIo }) };
  }

  async function read(fh: number, size: number, offset: number): Promise<Outcome> {
    const parts = await files.slices(fh, size, offset);
    if (parts === undefined) return { code: Errno.EBADF };
    const n = parts.reduce((sum, part) => sum + part.length, 0);
    metrics.bytesRead.inc(n);
    return { code: n, reply: (req) => replies.data(req, parts) };
  }

  return (op, req, ino, name, a, b, fh) => {
    if (op === FuseOp.FORGET) {
      inodes.forget(ino, a);
      return;
    }
    if (req === undefined) return;
    const opName = OP_NAMES.get(op) ?? String(op);
    switch (op) {
      case FuseOp.LOOKUP:
        return call(opName, req, () => lookup(ino, name ?? ''));
      case FuseOp.GETATTR:
        return call(opName, req, async () => {
          const inode = known(ino);
          const attr = attrOf(inode);
          return { code: 0, reply: (r) => replies.attr(r, attr, attrSeconds(inode)) };
        });
      case FuseOp.OPEN:
        return call(opName, req, () => open(ino, a));
      case FuseOp.READ:
        return call(opName, req, () => read(fh, a, b));
      case FuseOp.RELEASE:
        files.release(fh);
        send(opName, req, { code: 0 });
        return;
      case FuseOp.OPENDIR:
        return call(opName, req, () => opendir(ino));
      case FuseOp.READDIR:
        return call(opName, req, async () => {
          const listing = listings.get(fh);
          if (!listing) return { code: Errno.EBADF };
          return { code: 0, reply: (r) => replies.dir(r, a, listing.names, listing.inos, listing.modes, b) };
        });
      case FuseOp.RELEASEDIR:
        listings.delete(fh);
        send(opName, req, { code: 0 });
        return;
      default:
        send(opName, req, { code: Errno.ENOSYS });
        return;
    }
  };
}
