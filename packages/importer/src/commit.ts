import { ChunkClaimedError, ConflictError, type NewEntry } from '@ferry/core';
import type { Meta } from '@ferry/meta';

/**
 * Commit, and when garbage collection has claimed a chunk the entries name (an imported object
 * that became unreferenced and is referenced again), wait until its claim is over and commit
 * again: an imported chunk needs no upload, its origin holds it. A chunk the import stored itself
 * (a small file fetched whole) may have been deleted by that claim: `restore` puts it back first.
 */
export async function commitPastClaims(
  meta: Meta,
  entries: NewEntry[],
  restore?: (chunks: readonly string[]) => Promise<void>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await meta.commit(entries);
      return;
    } catch (err) {
      if (!(err instanceof ChunkClaimedError) || attempt >= 3) throw err;
      await meta.refs.waitUntilUnclaimed(err.chunks);
      await restore?.(err.chunks);
    }
  }
}

/**
 * Commit a batch of imported entries as one record, leaving out the paths that cannot become
 * files (an existing directory, or a file as an ancestor): asked of Redis up front in a dry run,
 * and after a refused commit otherwise; a batch refused again (something else changed the paths
 * meanwhile) is committed one by one. Returns the paths left out and the change records written.
 */
export async function commitImported(
  meta: Meta,
  entries: NewEntry[],
  newPaths: string[],
  dryRun: boolean,
): Promise<{ refused: Set<string>; records: number }> {
  const refused = new Set<string>();
  let records = 0;
  const commit = async (items: NewEntry[]) => {
    if (items.length === 0 || dryRun) return;
    await commitPastClaims(meta, items);
    records += 1;
  };
  const rest = () => entries.filter((e) => !refused.has(e.path));
  try {
    // A dry run has no commit to refuse a conflict, so it asks up front.
    if (dryRun) for (const path of await meta.conflictingPaths(newPaths)) refused.add(path);
    await commit(rest());
    return { refused, records };
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
  }
  for (const path of await meta.conflictingPaths(newPaths)) refused.add(path);
  const left = rest();
  try {
    await commit(left);
  } catch (again) {
    if (!(again instanceof ConflictError)) throw again;
    for (const item of left) {
      try {
        await commit([item]);
      } catch (one) {
        if (!(one instanceof ConflictError)) throw one;
        refused.add(item.path);
      }
    }
  }
  return { refused, records };
}
