import type { Entry } from '@ferry/core';
import { type Meta, type MirrorMeta, ResyncIncompleteError } from '@ferry/meta';

export interface ResyncRun {
  source: Meta;
  mirror: MirrorMeta;
  /** The watcher's fencing token: every write of the resync carries it. */
  token: string;
  pageSize: number;
  /** Why (kept in the resync's state for status). */
  reason: string;
  queueCopies: (entries: Entry[]) => Promise<void>;
  /** Throws when the resync should stop where it is (the watcher is stopping). */
  stopping: () => void;
}

export interface ResyncDone {
  snapshot: string;
  epoch: string;
  seen: number;
  written: number;
  removed: number;
  pages: number;
  ms: number;
}

/**
 * One full resync: the source's history first (snapshot id = its last generated id, its epoch,
 * its record count, all from one atomic read), then every source entry page by page (only newer
 * versions win), then the prune of what the source no longer has, which sets the cursor and the
 * epoch in its last step. A hash scan's cursor means nothing across a restart or failover of the
 * source's Redis (the hash seed changes), and a source that lost its data meanwhile has a new
 * epoch: either makes the scan untrustworthy, so the resync is refused before anything is
 * pruned, and started over. Nothing here has a deadline: the resync's state has no TTL, so it
 * waits through outages of the source's Redis.
 */
export async function runResync(run: ResyncRun): Promise<ResyncDone> {
  const { source, mirror, token } = run;
  const started = Date.now();
  const serverBefore = await source.log.serverRunId();
  const before = await source.log.history();
  const snapshot = before.last ?? '0-0';
  const resync = await mirror.beginResync({ snapshot, epoch: before.epoch, added: before.added, reason: run.reason }, token);
  let written = 0;
  let seen = 0;
  let cursor: string | undefined;
  do {
    run.stopping();
    const page = await source.scanEntries({ count: run.pageSize, ...(cursor ? { cursor } : {}) });
    await run.queueCopies(page.entries);
    written += await mirror.applySnapshot(resync, page.entries, token);
    seen += page.entries.length;
    cursor = page.cursor;
  } while (cursor);
  const [serverAfter, after] = await Promise.all([source.log.serverRunId(), source.log.history()]);
  if (serverAfter !== serverBefore) {
    throw new ResyncIncompleteError("the source's Redis restarted or failed over during the scan, so the scan may have missed entries");
  }
  if (after.epoch !== before.epoch) {
    throw new ResyncIncompleteError(`the source's epoch changed during the scan (${before.epoch} to ${after.epoch})`);
  }
  run.stopping();
  const removed = await mirror.finishResync(resync, { token });
  return { snapshot, epoch: before.epoch, seen, written, removed, pages: resync.pages, ms: Date.now() - started };
}
