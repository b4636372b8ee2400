import { readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { joinPath, localIoError, normalizePath } from '@ferry/core';

export interface LocalFile {
  /** Path on the local disk. */
  local: string;
  /** Where it goes in the volume (normalised). */
  path: string;
  size: number;
  mtime: number;
}

/**
 * The files a `put` of `local` to volume `target` writes, every volume path validated before
 * anything is uploaded (a bad name fails the whole put, nothing applied). Symlinks are followed
 * (model caches link shards to blobs); a directory reached twice is walked once.
 */
export async function planPut(local: string, target: string): Promise<{ files: LocalFile[]; isDir: boolean }> {
  const root = normalizePath(target);
  const st = await stat(local).catch((err) => {
    throw localIoError(err, 'cannot read', local);
  });
  if (st.isFile()) return { files: [{ local, path: root, size: st.size, mtime: Math.floor(st.mtimeMs) }], isDir: false };
  if (!st.isDirectory())
    throw localIoError(Object.assign(new Error('not a regular file or directory'), { code: 'EINVAL' }), 'cannot read', local);
  const files: LocalFile[] = [];
  const seen = new Set<string>();
  async function walk(dir: string): Promise<void> {
    const real = await realpath(dir);
    if (seen.has(real)) return;
    seen.add(real);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      throw localIoError(err, 'cannot read directory', dir);
    }
    for (const name of names) {
      const full = join(dir, name);
      const child = await stat(full).catch((err) => {
        throw localIoError(err, 'cannot read', full);
      });
      if (child.isDirectory()) await walk(full);
      else if (child.isFile()) {
        const rel = relative(local, full).split(sep).join('/');
        files.push({ local: full, path: joinPath(root, rel), size: child.size, mtime: Math.floor(child.mtimeMs) });
      }
    }
  }
  await walk(local);
  return { files, isDir: true };
}
