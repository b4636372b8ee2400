import { FerryError } from '@ferry/core';

/** The errno values the mount answers with (negative, as FUSE wants them). */
export const Errno = {
  EPERM: -1,
  ENOENT: -2,
  EIO: -5,
  EBADF: -9,
  EACCES: -13,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EROFS: -30,
  ENOSYS: -38,
  ENODATA: -61,
  ETIMEDOUT: -110,
} as const;

/**
 * The errno a failed metadata or data call becomes. A file that is not there (or a name that can
 * never be a Ferry path) is ENOENT; everything else — Redis unreachable, no tier with a good copy
 * of a chunk, an origin object changed since import — is EIO: the caller cannot fix it by asking
 * differently, and the mount's log says what it was.
 */
export function errnoOf(err: unknown): number {
  if (err instanceof FerryError) {
    if (err.code === 'NOT_FOUND' || err.code === 'INVALID_PATH') return Errno.ENOENT;
  }
  return Errno.EIO;
}

/** Open flags that ask for writing (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND). */
export function wantsWrite(flags: number): boolean {
  const accessMode = flags & 0o3;
  return accessMode !== 0 || (flags & (0o100 | 0o1000 | 0o2000)) !== 0;
}
