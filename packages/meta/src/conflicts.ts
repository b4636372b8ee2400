import type { VolumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * Paths of `paths` that cannot become files: the path is an existing directory, or one of its
 * ancestors is a file (in Redis or earlier in the same list). One pipelined round trip. Origins
 * can hold both `a` and `a/b`; listing order puts `a` first, so `a/b` is the one refused.
 */
export async function conflictingPaths(redis: RedisClient, keys: VolumeKeys, paths: readonly string[]): Promise<Set<string>> {
  const conflicts = new Set<string>();
  const inBatch = new Set<string>();
  const ancestors = new Map<string, number>();
  const pipeline = redis.pipeline();
  const dirChecks: Array<[string, number]> = [];
  let n = 0;
  for (const path of paths) {
    for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) {
      const ancestor = path.slice(0, i);
      if (inBatch.has(ancestor)) conflicts.add(path);
      if (!ancestors.has(ancestor)) {
        ancestors.set(ancestor, n++);
        pipeline.hexists(keys.entries, ancestor);
      }
    }
    inBatch.add(path);
    dirChecks.push([path, n++]);
    pipeline.zrangebylex(keys.paths, `[${path}/`, `(${path}0`, 'LIMIT', 0, 1);
  }
  const replies = (await pipeline.exec()) ?? [];
  const reply = (i: number): unknown => {
    const [err, value] = replies[i] ?? [new Error('missing pipeline reply'), undefined];
    if (err) throw err;
    return value;
  };
  const fileAncestors = new Set([...ancestors].filter(([, i]) => reply(i) === 1).map(([a]) => a));
  for (const [path, i] of dirChecks) {
    if ((reply(i) as string[]).length > 0) conflicts.add(path);
    for (let j = path.indexOf('/', 1); j > 0; j = path.indexOf('/', j + 1)) {
      if (fileAncestors.has(path.slice(0, j))) conflicts.add(path);
    }
  }
  return conflicts;
}
