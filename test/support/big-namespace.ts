import type { NewEntry } from '@ferry/core';
import type { Meta } from '@ferry/meta';

/** Shape of the namespace: 5,000 files and 95 directories of 1,000 files directly under /big. */
export const BIG = { dirs: 95, filesPerDir: 1000, directFiles: 5000 } as const;

/**
 * Paths of a namespace of about 100,000 files under /big (every 53rd child a directory of 1,000
 * files), plus neighbours that share the prefix but are not under /big, and /big's direct
 * children in listing order (`name/` for directories).
 */
export function bigNamespace(): { paths: string[]; children: string[] } {
  const paths: string[] = ['/big.txt', '/big0/x', '/bi/g'];
  const children: string[] = [];
  for (let i = 0, dirs = 0; children.length < BIG.dirs + BIG.directFiles; i++) {
    const name = `/big/c${String(i).padStart(5, '0')}`;
    if (i % 53 === 0 && dirs < BIG.dirs) {
      dirs++;
      children.push(`${name}/`);
      for (let j = 0; j < BIG.filesPerDir; j++) paths.push(`${name}/part-${j}`);
    } else {
      children.push(name);
      paths.push(name);
    }
  }
  return { paths, children };
}

/** Commit paths in batches of 1,000 without awaiting in between: ioredis pipelines the scripts. */
export async function commitAll(meta: Meta, paths: string[], file: (path: string, i: number) => NewEntry): Promise<void> {
  const batches: Array<Promise<unknown>> = [];
  for (let i = 0; i < paths.length; i += 1000) batches.push(meta.commit(paths.slice(i, i + 1000).map((p, j) => file(p, i + j))));
  await Promise.all(batches);
}
