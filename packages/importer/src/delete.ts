import { type Entry, forEachLimit, NotFoundError } from '@ferry/core';
import { compareIds, type ListPage, type Meta } from '@ferry/meta';
import type { Checkpoint, CheckpointState } from './checkpoint.js';
import { mapKey } from './keys.js';

export interface DeleteVanishedOptions {
  meta: Meta;
  checkpoint: Checkpoint;
  run: CheckpointState;
  url: string;
  target: string;
  dryRun: boolean;
  concurrency: number;
  onDeleted(entry: Entry): void;
  onPage(): void;
}

/**
 * After a complete listing: remove the files under `target` that this import made from an
 * object it no longer listed. Only entries whose origin is this origin at exactly the path its
 * key maps to, and that are not newer than the run, qualify: files written by `ferry put`,
 * imported from elsewhere, or changed while the import ran are never touched. A crash here is
 * resumed by scanning again; deleting what is already gone is a no-op.
 */
export async function deleteVanished(o: DeleteVanishedOptions): Promise<void> {
  const { meta, run } = o;
  const ours = (e: Entry) => {
    if (e.origin?.store !== o.url || compareIds(e.version, run.since) > 0) return false;
    const mapped = mapKey(o.target, e.origin.key);
    return 'path' in mapped && mapped.path === e.path;
  };
  let cursor: string | undefined;
  do {
    let page: ListPage;
    try {
      page = await meta.list(o.target, { recursive: true, limit: 1000, ...(cursor ? { cursor } : {}) });
    } catch (err) {
      if (err instanceof NotFoundError) return; // nothing under the target at all
      throw err;
    }
    const candidates = page.items.flatMap((item) => (item.kind === 'file' && ours(item.entry) ? [item.entry] : []));
    const gone = new Set(
      await o.checkpoint.unseen(
        run.run,
        candidates.map((e) => e.path),
      ),
    );
    await forEachLimit(
      candidates.filter((e) => gone.has(e.path)),
      o.concurrency,
      async (entry) => {
        if (o.dryRun) return o.onDeleted(entry);
        // The scan is a moment old: remove the file only if it is still the entry listed.
        // (A write landing between this check and the delete is the one race left; see README.)
        const now = await meta.tryStat(entry.path);
        if (now?.version !== entry.version) return;
        try {
          await meta.delete(entry.path);
        } catch (err) {
          if (err instanceof NotFoundError) return;
          throw err;
        }
        o.onDeleted(entry);
      },
    );
    cursor = page.cursor;
    o.onPage();
  } while (cursor);
}
