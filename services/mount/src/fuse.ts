import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { messageOf, UnavailableError } from '@ferry/core';

const run = promisify(execFile);

/** A stat as fuse-native takes it (times as Date or ms). */
export interface FuseStat {
  mode: number;
  size: number;
  mtime: Date;
  atime: Date;
  ctime: Date;
  nlink: number;
  uid: number;
  gid: number;
  blocks?: number;
  blksize?: number;
}

type Callback<T = never> = (code: number, value?: T) => void;

/** The operations the mount implements, in fuse-native's callback style (code 0 or a negative errno). */
export interface FuseOps {
  init(cb: (code: number) => void): void;
  statfs(path: string, cb: Callback<object>): void;
  getattr(path: string, cb: Callback<FuseStat>): void;
  access(path: string, mode: number, cb: (code: number) => void): void;
  readdir(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void;
  open(path: string, flags: number, cb: Callback<number>): void;
  opendir(path: string, flags: number, cb: Callback<number>): void;
  releasedir(path: string, fd: number, cb: (code: number) => void): void;
  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrCode: number) => void): void;
  release(path: string, fd: number, cb: (code: number) => void): void;
  readlink(path: string, cb: Callback<string>): void;
  getxattr(path: string, name: string, position: number, cb: (code: number, value?: Buffer | null) => void): void;
  listxattr(path: string, cb: (code: number, list?: string[]) => void): void;
  // Every way of changing the tree: refused with EROFS (the kernel refuses most first: `ro`).
  write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (code: number) => void): void;
  create(path: string, mode: number, cb: (code: number) => void): void;
  truncate(path: string, size: number, cb: (code: number) => void): void;
  ftruncate(path: string, fd: number, size: number, cb: (code: number) => void): void;
  utimens(path: string, atime: number, mtime: number, cb: (code: number) => void): void;
  chmod(path: string, mode: number, cb: (code: number) => void): void;
  chown(path: string, uid: number, gid: number, cb: (code: number) => void): void;
  mknod(path: string, mode: number, dev: number, cb: (code: number) => void): void;
  mkdir(path: string, mode: number, cb: (code: number) => void): void;
  rmdir(path: string, cb: (code: number) => void): void;
  unlink(path: string, cb: (code: number) => void): void;
  rename(src: string, dest: string, cb: (code: number) => void): void;
  link(src: string, dest: string, cb: (code: number) => void): void;
  symlink(src: string, dest: string, cb: (code: number) => void): void;
  setxattr(path: string, name: string, value: Buffer, position: number, flags: number, cb: (code: number) => void): void;
  removexattr(path: string, name: string, cb: (code: number) => void): void;
}

export interface FuseMountOptions {
  /** Kernel cache of names and attributes, in seconds (libfuse's entry_timeout and attr_timeout). */
  attrTimeoutSeconds: number;
  /** An operation not answered within this fails (fuse-native answers it with ETIMEDOUT). */
  opTimeoutMs: number;
  /** `fsname` in the mount table (`ferry:<volume>`). */
  fsname: string;
  /** Let other users (and other containers' users) read the mount. */
  allowOther: boolean;
  /** Bypass the kernel page cache (see README: strict versions per open file, no shared mmap). */
  directIo: boolean;
}

interface NativeFuse {
  mnt: string;
  _thread: Buffer;
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
  _close(cb: (err: Error | null) => void): void;
}

type NativeFuseClass = (new (mnt: string, ops: FuseOps, opts: object) => NativeFuse) & { prototype: NativeFuse };

interface Binding {
  fuse_native_unmount(mnt: string, thread: Buffer): void;
}

let loaded: { Fuse: NativeFuseClass; binding: Binding } | undefined;

/**
 * fuse-native and its compiled binding, loaded on first use so that every other command works on
 * a machine without libfuse. A missing libfuse.so.2 is one clear error naming the packages.
 */
export function loadFuse(): { Fuse: NativeFuseClass; binding: Binding } {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    const Fuse = require('fuse-native') as NativeFuseClass;
    // The same binding fuse-native loaded (node-gyp-build caches by directory): its unmount
    // cleanup is needed after an unmount fuse-native did not do itself (see FuseSession.close).
    const dir = dirname(require.resolve('fuse-native/package.json'));
    const binding = createRequire(require.resolve('fuse-native'))('node-gyp-build')(dir) as Binding;
    loaded = { Fuse, binding };
    return loaded;
  } catch (err) {
    throw new UnavailableError(
      `cannot load FUSE (fuse-native over libfuse 2): ${messageOf(err).split('\n')[0]}; install it with: apt-get install -y libfuse2 fuse`,
      { cause: err },
    );
  }
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
 * One FUSE session of fuse-native: mount, and an unmount that reports a busy mount instead of
 * always detaching lazily (fuse-native's own `unmount` runs `fusermount -uz` right away).
 */
export class FuseSession {
  readonly mountpoint: string;
  readonly #native: NativeFuse;
  readonly #binding: Binding;
  #mounted = false;

  constructor(options: { mountpoint: string; ops: FuseOps; mount: FuseMountOptions }) {
    const { Fuse, binding } = loadFuse();
    this.mountpoint = options.mountpoint;
    this.#binding = binding;
    const m = options.mount;
    // fuse-native passes only the options it knows; ro, direct_io and the timeouts (0 included,
    // which it would drop) are added to its option string.
    const extra = [
      'ro',
      'default_permissions',
      `entry_timeout=${m.attrTimeoutSeconds}`,
      `attr_timeout=${m.attrTimeoutSeconds}`,
      'negative_timeout=0',
      ...(m.directIo ? ['direct_io'] : []),
    ];
    class Session extends Fuse {
      override _fuseOptions(): string {
        const base = super._fuseOptions();
        return base ? `${base},${extra.join(',')}` : `-o${extra.join(',')}`;
      }
    }
    this.#native = new Session(options.mountpoint, options.ops, {
      fsname: m.fsname,
      subtype: 'ferry',
      allowOther: m.allowOther,
      timeout: m.opTimeoutMs,
      mkdir: false,
    });
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#native.mount((err) => {
        if (err) {
          reject(new UnavailableError(`cannot mount ${this.mountpoint}: ${messageOf(err)}`, { cause: err }));
          return;
        }
        this.#mounted = true;
        resolve();
      });
    });
  }

  /** Unmount (or detach lazily when busy). The FUSE thread keeps serving open files of a detached mount. */
  async unmount(): Promise<UnmountOutcome> {
    if (!this.#mounted) return { kind: 'unmounted' };
    return unmountPath(this.mountpoint);
  }

  /** Release the binding's event-loop handle so the process can exit; after `unmount`. */
  release(): void {
    if (!this.#mounted) return;
    this.#mounted = false;
    this.#binding.fuse_native_unmount(this.#native.mnt, this.#native._thread);
  }
}
