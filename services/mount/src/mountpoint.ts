import { readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LocalIoError, localIoError } from '@ferry/core';
import { detachLazily } from './fuse.js';

/** A mount the kernel lists at a path. */
export interface MountInfo {
  mountpoint: string;
  /** `major:minor` of the mounted file system (its backing device info under /sys/class/bdi). */
  device: string;
  fstype: string;
  source: string;
}

/** `\040` and friends: mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Parse /proc/self/mountinfo text (mount point is field 5; fstype and source follow the " - "). */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const mountpoint = fields[4];
    const [fstype, source] = right.split(' ');
    if (mountpoint && fstype)
      mounts.push({ mountpoint: unescapeMountPath(mountpoint), device: fields[2] ?? '', fstype, source: unescapeMountPath(source ?? '') });
  }
  return mounts;
}

/** The mount the kernel lists at `path` (the last one, which is the one visible), if any. */
export async function mountAt(path: string): Promise<MountInfo | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return parseMountInfo(text)
    .filter((m) => m.mountpoint === path)
    .at(-1);
}

export type MountpointState = { kind: 'free' } | { kind: 'stale'; mount?: MountInfo } | { kind: 'mounted'; mount: MountInfo };

/** What is at a mountpoint now: nothing, a live mount, or a stale one (its FUSE process is gone). */
export async function inspectMountpoint(path: string): Promise<MountpointState> {
  const mount = await mountAt(path);
  try {
    const st = await stat(path);
    if (mount) {
      // stat may be answered from the kernel's attribute cache of a mount whose process died;
      // statfs always asks the process.
      const alive = await statfs(path).then(
        () => true,
        (err: NodeJS.ErrnoException) => err.code !== 'ENOTCONN' && err.code !== 'ECONNABORTED',
      );
      return alive ? { kind: 'mounted', mount } : { kind: 'stale', mount };
    }
    if (!st.isDirectory()) throw new LocalIoError(`mountpoint ${path}: not a directory`);
    return { kind: 'free' };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The kernel answers for a FUSE mount whose process died: "Transport endpoint is not connected".
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') return mount ? { kind: 'stale', mount } : { kind: 'stale' };
    if (err instanceof LocalIoError) throw err;
    throw localIoError(err, 'mountpoint', path);
  }
}

/**
 * Make sure `mountpoint` can be mounted on: an existing directory with nothing mounted on it. A
 * stale mount (left by a mount process that was killed) or a live one is an error that says what
 * to do, unless `force`: then it is detached lazily (processes using it keep what they have open).
 */
export async function prepareMountpoint(mountpoint: string, force: boolean): Promise<{ path: string; cleared?: MountpointState }> {
  const path = resolve(mountpoint);
  const state = await inspectMountpoint(path);
  if (state.kind === 'free') return { path };
  if (!force) {
    if (state.kind === 'stale') {
      throw new LocalIoError(
        `mountpoint ${path}: a stale FUSE mount is left there (its process is gone; "Transport endpoint is not connected"); pass --force to detach it, or run: fusermount -uz ${path}`,
      );
    }
    throw new LocalIoError(
      `mountpoint ${path}: already mounted (${state.mount.fstype} ${state.mount.source}); unmount it first, or pass --force to detach it`,
    );
  }
  await detachLazily(path);
  const after = await inspectMountpoint(path);
  if (after.kind !== 'free') throw new LocalIoError(`mountpoint ${path}: still mounted after a lazy detach; unmount it by hand`);
  return { path, cleared: state };
}

/**
 * Let the kernel read ahead `bytes` on the mount (its default is 128 KiB, one FUSE read at a
 * time, which caps a sequential reader at one round trip per 128 KiB). Returns false where the
 * setting cannot be written (not root, no sysfs): the mount works, only slower.
 */
export async function setReadAhead(mountpoint: string, bytes: number): Promise<boolean> {
  const mount = await mountAt(mountpoint);
  if (!mount?.device) return false;
  // The kernel lowers the read-ahead to what the FUSE INIT reply allows when that reply arrives,
  // which can be after the mount call returned: a value written before it is lost. A request on
  // the mount waits for INIT, so one statfs first makes the write land after it (statfs, not
  // stat: a stat would leave the root's attributes in the kernel's cache, where a later check of
  // a dead mount would find them and take it for a live one).
  await statfs(mountpoint).catch(() => {});
  try {
    await writeFile(`/sys/class/bdi/${mount.device}/read_ahead_kb`, String(Math.max(128, Math.round(bytes / 1024))));
    return true;
  } catch {
    return false;
  }
}
