import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { messageOf, UnavailableError } from '@ferry/core';

const run = promisify(execFile);

/** What the kernel is told about a file or directory (`ino` is the inode number the mount chose). */
export interface FuseAttr {
  ino: number;
  mode: number;
  size: number;
  mtimeMs: number;
  nlink: number;
  uid: number;
  gid: number;
}

/** The requests the binding hands over (its `enum op`). */
export const FuseOp = {
  EXIT: 0,
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  OPEN: 4,
  READ: 5,
  RELEASE: 6,
  OPENDIR: 7,
  READDIR: 8,
  RELEASEDIR: 9,
} as const;

/** An opaque request of the kernel; answered exactly once through `FuseReplies`. */
export type FuseRequest = bigint;

/**
 * One request: `ino` is the inode asked about (a lookup's parent), `name` a lookup's name; `a`,
 * `b` and `fh` by op — open/opendir: flags; read/readdir: size, offset, handle; forget: count;
 * release/releasedir: handle.
 */
export type FuseHandler = (
  op: number,
  req: FuseRequest | undefined,
  ino: number,
  name: string | undefined,
  a: number,
  b: number,
  fh: number,
) => void;

/**
 * The answers to the kernel (errno positive). A reply the binding cannot make (an argument of the
 * wrong type, no memory) answers the kernel EIO itself, so the caller's system call fails instead
 * of hanging, and then throws (code `EREPLY`).
 */
export interface FuseReplies {
  err(req: FuseRequest, errno: number): void;
  entry(req: FuseRequest, attr: FuseAttr, entryTimeoutSeconds: number, attrTimeoutSeconds: number): void;
  attr(req: FuseRequest, attr: FuseAttr, attrTimeoutSeconds: number): void;
  open(req: FuseRequest, fh: number, options: { directIo: boolean; keepCache: boolean }): void;
  /** File bytes, sent as they are (views of verified chunks: no copy). */
  data(req: FuseRequest, parts: Buffer[]): void;
  /** Directory entries from index `start` on, as many as fit in `size` bytes. */
  dir(req: FuseRequest, size: number, names: string[], inos: number[], modes: number[], start: number): void;
}

export interface FuseMountOptions {
  /** `fsname` in the mount table (`ferry:<volume>`). */
  fsname: string;
  /** Let other users (and other containers' users) read the mount. */
  allowOther: boolean;
}

interface Binding {
  mount(mountpoint: string, options: string, handler: FuseHandler): object;
  unref(session: object): void;
  replyErr(req: FuseRequest, errno: number): void;
  replyEntry(req: FuseRequest, attr: number[], entryTimeout: number, attrTimeout: number): void;
  replyAttr(req: FuseRequest, attr: number[], attrTimeout: number): void;
  replyOpen(req: FuseRequest, fh: number, directIo: boolean, keepCache: boolean): void;
  replyData(req: FuseRequest, parts: Buffer[]): void;
  replyDir(req: FuseRequest, size: number, names: string[], inos: number[], modes: number[], start: number): void;
}

let loaded: Binding | undefined;

/**
 * The binding (native/ferry_fuse.c, built at install), loaded on first use so that every other
 * command works on a machine without libfuse. A missing libfuse.so.2 is one clear error naming
 * the packages.
 */
export function loadFuse(): Binding {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require('../build/Release/ferry_fuse.node') as Binding;
    return loaded;
  } catch (err) {
    throw new UnavailableError(
      `cannot load FUSE (libfuse 2): ${messageOf(err).split('\n')[0]}; install it with: apt-get install -y libfuse2 fuse (and build the binding with npm ci)`,
      { cause: err },
    );
  }
}

const attrArray = (a: FuseAttr): number[] => [a.ino, a.mode, a.size, a.mtimeMs, a.nlink, a.uid, a.gid];

/** The replies through the binding. */
export function bindingReplies(binding: Binding = loadFuse()): FuseReplies {
  return {
    err: (req, errno) => binding.replyErr(req, errno),
    entry: (req, attr, entryTimeout, attrTimeout) => binding.replyEntry(req, attrArray(attr), entryTimeout, attrTimeout),
    attr: (req, attr, timeout) => binding.replyAttr(req, attrArray(attr), timeout),
    open: (req, fh, o) => binding.replyOpen(req, fh, o.directIo, o.keepCache),
    data: (req, parts) => binding.replyData(req, parts),
    dir: (req, size, names, inos, modes, start) => binding.replyDir(req, size, names, inos, modes, start),
  };
}

/** A path's fusermount run; rejects with fusermount's own message. */
async function fusermount(args: string[]): Promise<void> {
  try {
    await run('fusermount', args);
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    throw new Error(stderr || messageOf(err), { cause: err });
  }
}

/** What an unmount did: `unmounted`, or `detached` (busy: lazily, open files keep working until closed). */
export type UnmountOutcome = { kind: 'unmounted' } | { kind: 'detached'; reason: string };

/** Unmount `mountpoint`; when it is busy, detach it lazily instead. */
export async function unmountPath(mountpoint: string): Promise<UnmountOutcome> {
  try {
    await fusermount(['-u', mountpoint]);
    return { kind: 'unmounted' };
  } catch (err) {
    const reason = messageOf(err);
    if (!/busy/i.test(reason)) throw err;
    await fusermount(['-u', '-z', mountpoint]);
    return { kind: 'detached', reason };
  }
}

/** Lazily detach whatever is mounted at `mountpoint` (a stale mount whose process is gone). */
export async function detachLazily(mountpoint: string): Promise<void> {
  try {
    await fusermount(['-u', '-z', mountpoint]);
  } catch (err) {
    // fusermount only knows mounts of its mtab; the kernel's own umount covers the rest.
    await run('umount', ['-l', mountpoint]).catch(() => {
      throw err;
    });
  }
}

/**
 * One FUSE session: mount (libfuse's loop runs on a thread of the binding and hands each request
 * to `handler`), and an unmount that reports a busy mount instead of always detaching lazily.
 * The session is never destroyed while the process lives: a reply may still come for a request
 * handed over just before the unmount, and libfuse answers it harmlessly (ENODEV) only while the
 * channel exists.
 */
export class FuseSession {
  readonly mountpoint: string;
  readonly #binding: Binding;
  readonly #handler: FuseHandler;
  readonly #options: FuseMountOptions;
  #session: object | undefined;
  #exited: () => void = () => {};
  /**
   * Settles when libfuse's loop has ended (unmounted, or detached and its last file closed) and
   * the binding's thread has let go of Node: from then on the process may exit safely.
   */
  readonly exited: Promise<void>;

  /** True once `exited` has settled: the kernel sends nothing more. */
  get ended(): boolean {
    return this.#ended;
  }

  readonly #onHandlerError: (err: unknown) => void;
  #ended = false;

  constructor(options: {
    mountpoint: string;
    handler: FuseHandler;
    mount: FuseMountOptions;
    /** A handler that threw (the binding cannot tell whether it answered first): logged by the caller. */
    onHandlerError?: (err: unknown) => void;
  }) {
    this.#binding = loadFuse();
    this.mountpoint = options.mountpoint;
    this.#handler = options.handler;
    this.#options = options.mount;
    this.#onHandlerError = options.onHandlerError ?? (() => {});
    this.exited = new Promise((resolve) => {
      this.#exited = resolve;
    });
  }

  mount(): void {
    const m = this.#options;
    const options = ['ro', 'default_permissions', `fsname=${m.fsname}`, 'subtype=ferry', ...(m.allowOther ? ['allow_other'] : [])];
    const handler: FuseHandler = (op, ...rest) => {
      if (op === FuseOp.EXIT) {
        this.#ended = true;
        this.#exited();
        return;
      }
      // An exception must not reach the binding's thread-safe call, where Node drops it with a warning.
      try {
        this.#handler(op, ...rest);
      } catch (err) {
        this.#onHandlerError(err);
      }
    };
    try {
      this.#session = this.#binding.mount(this.mountpoint, options.join(','), handler);
    } catch (err) {
      throw new UnavailableError(`cannot mount ${this.mountpoint}: ${messageOf(err)}`, { cause: err });
    }
  }

  /** Unmount (or detach lazily when busy). The FUSE thread keeps serving open files of a detached mount. */
  async unmount(): Promise<UnmountOutcome> {
    if (!this.#session) return { kind: 'unmounted' };
    return unmountPath(this.mountpoint);
  }

  /** Let the process exit even if the FUSE thread still serves a detached mount; after `unmount`. */
  release(): void {
    if (!this.#session) return;
    this.#binding.unref(this.#session);
    this.#session = undefined;
  }
}
