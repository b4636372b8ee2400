import { randomBytes } from 'node:crypto';
import {
  ChunkClaimedError,
  ConflictError,
  CorruptError,
  type Entry,
  forEachLimit,
  type Logger,
  type NewEntry,
  readAhead,
  silentLogger,
} from '@ferry/core';
import { decodeStoredEntry, type Meta, type RedisClient, translateRedisError, volumePath } from '@ferry/meta';
import type { ObjectInfo, ObjectStore } from '@ferry/stores';
import { Checkpoint, type CheckpointState, emptyCounts, type ImportCounts } from './checkpoint.js';
import { conflictingPaths } from './conflicts.js';
import { deleteVanished } from './delete.js';
import { importedEntry, importedFrom, sameFingerprint } from './entries.js';
import { importId, mapKey, type SkipReason } from './keys.js';

export interface ImportOptions {
  /** The volume in the source region: imports are writes. */
  meta: Meta;
  /** The source region's Redis (the client `meta` uses): entries are read and checkpoints kept there. */
  redis: RedisClient;
  /** The origin, opened from `originUrl`; keys are listed relative to its prefix. */
  origin: ObjectStore;
  /** Canonical origin URL (originStoreUrl), recorded as every entry's `origin.store`. */
  originUrl: string;
  /** Volume directory the keys are mapped under. */
  target: string;
  chunkSize: number;
  /** Remove entries imported from this origin under `target` whose object is gone. */
  delete?: boolean;
  /** Report what would change; write nothing (no entries, no checkpoint). */
  dryRun?: boolean;
  /** Batches committed (or files deleted) at once (default 4). */
  concurrency?: number;
  /** Entries per change record (default 500). */
  batchSize?: number;
  /** Objects per listing page (default 1000). */
  pageSize?: number;
  /** Least time between two onProgress calls (default 500 ms). */
  progressMs?: number;
  onProgress?: (progress: ImportProgress) => void;
  logger?: Logger;
}

export interface ImportProgress extends ImportCounts {
  phase: 'list' | 'delete';
  /** Objects listed by this process per second. */
  objectsPerSecond: number;
}

export interface ImportSummary extends ImportCounts {
  origin: string;
  target: string;
  dryRun: boolean;
  delete: boolean;
  /** This process continued an interrupted import from its checkpoint. */
  resumed: boolean;
  /** Objects listed by this process (a resumed import skips what was already done). */
  listedThisRun: number;
  seconds: number;
  objectsPerSecond: number;
}

const MAX_EXAMPLES = 10;

/** One listed page whose outcome is not final until all its entries are committed. */
interface PageState {
  cursor: string | undefined;
  counts: ImportCounts;
  remaining: number;
}

interface Pending {
  entry: NewEntry;
  kind: 'new' | 'changed';
  page: PageState;
}

export function addCounts(into: ImportCounts, from: ImportCounts): void {
  for (const k of ['listed', 'new', 'changed', 'unchanged', 'deleted', 'skipped', 'bytesListed', 'bytesReferenced', 'commits'] as const) {
    into[k] += from[k];
  }
  for (const [reason, n] of Object.entries(from.skippedBy)) {
    into.skippedBy[reason as SkipReason] = (into.skippedBy[reason as SkipReason] ?? 0) + (n ?? 0);
  }
  for (const example of from.skippedExamples) if (into.skippedExamples.length < MAX_EXAMPLES) into.skippedExamples.push(example);
}

function skip(counts: ImportCounts, key: string, reason: SkipReason): void {
  counts.skipped += 1;
  counts.skippedBy[reason] = (counts.skippedBy[reason] ?? 0) + 1;
  if (counts.skippedExamples.length < MAX_EXAMPLES) counts.skippedExamples.push({ key, reason });
}

/** Listing pages read ahead of the one being compared and committed (each at most `pageSize` keys). */
const LIST_AHEAD = 2;

/**
 * Import the objects under an origin prefix as files under `target`, without copying them.
 * The listing is paged (memory holds a page plus the batches in flight); each object's
 * fingerprint is compared with the entry imported from it, and only new or changed objects are
 * committed, in batches, each one change record. The checkpoint (listing cursor + counts) moves
 * only past pages whose entries are all committed, so a crash resumes where it left off and a
 * re-run converges on the same entries. Deletes (sync) happen only after a complete listing.
 */
export async function importPrefix(options: ImportOptions): Promise<ImportSummary> {
  const started = Date.now();
  const { meta, redis, origin, originUrl: url, chunkSize } = options;
  const target = volumePath(options.target, 'import into');
  const dryRun = options.dryRun ?? false;
  const wantDelete = options.delete ?? false;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const batchSize = Math.max(1, options.batchSize ?? 500);
  const progressMs = options.progressMs ?? 500;
  const log = (options.logger ?? silentLogger).child({ import: url, target });
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw translateRedisError(err, redis);
    }
  };

  if (target !== '/' && (await meta.tryStat(target))) throw new ConflictError(`import into ${target}: is a file, not a directory`);
  const checkpoint = new Checkpoint({ redis, volume: meta.volume, id: importId(url, target) });
  const about = { origin: url, target };
  let state = dryRun ? undefined : await call(() => checkpoint.load());
  if (state && wantDelete && !state.trackSeen) {
    // The interrupted run did not record the paths it listed; --delete needs all of them.
    log.info({ run: state.run }, 'interrupted import did not track listed paths; listing again from the start');
    await call(() => checkpoint.clear(state?.run ?? ''));
    state = undefined;
  }
  const resumed = state !== undefined;
  if (state && !wantDelete && state.trackSeen) {
    await call(() => checkpoint.clearSeen(state?.run ?? ''));
    state.trackSeen = false;
  }
  const run: CheckpointState = state ?? {
    run: `${dryRun ? 'dry-' : ''}${randomBytes(8).toString('hex')}`,
    phase: 'list',
    since: await meta.snapshotId(),
    trackSeen: wantDelete,
    counts: emptyCounts(),
  };
  if (resumed) log.info({ run: run.run, phase: run.phase, listed: run.counts.listed }, 'resuming import from its checkpoint');
  // A dry run's seen set is a scratch key that expires even if the process dies.
  const seenTtl = dryRun ? 3600 : undefined;
  const base = run.counts;
  let listedHere = 0;
  let lastProgress = Date.now();
  const perSecond = () => listedHere / Math.max(0.001, (Date.now() - started) / 1000);
  const progress = (phase: 'list' | 'delete', extra: ImportCounts[]) => {
    if (!options.onProgress || Date.now() - lastProgress < progressMs) return;
    lastProgress = Date.now();
    const total = structuredClone(base);
    for (const c of extra) addCounts(total, c);
    options.onProgress({ phase, ...total, objectsPerSecond: Math.round(perSecond()) });
  };
  let saving: Promise<void> = dryRun ? Promise.resolve() : call(() => checkpoint.save(run, about));
  saving.catch(() => {});
  const save = () => {
    if (dryRun) return;
    const snapshot = structuredClone(run);
    saving = saving.then(() => call(() => checkpoint.save(snapshot, about)));
    // Handled here so a failed save cannot crash the process before the final await reports it.
    saving.catch(() => {});
  };

  if (run.phase === 'list') {
    const pages: PageState[] = [];
    let pending: Pending[] = [];
    let lastFlush = Date.now();

    /** Fold finished pages, in listing order, into the checkpoint. */
    const advance = () => {
      let moved = false;
      while (pages[0] && pages[0].remaining === 0) {
        const page = pages.shift() as PageState;
        addCounts(base, page.counts);
        if (page.cursor !== undefined) run.cursor = page.cursor;
        moved = true;
      }
      if (moved) save();
    };

    const commitBatch = async (batch: Pending[]): Promise<void> => {
      const refused = new Set<string>();
      const commit = async (items: Pending[]) => {
        if (items.length === 0) return;
        if (!dryRun)
          await commitPastClaims(
            meta,
            items.map((p) => p.entry),
          );
        (items.at(-1) as Pending).page.counts.commits += dryRun ? 0 : 1;
      };
      const newPaths = batch.filter((p) => p.kind === 'new').map((p) => p.entry.path);
      try {
        // A dry run has no commit to refuse a conflict, so it asks up front.
        if (dryRun) for (const path of await call(() => conflictingPaths(redis, meta, newPaths))) refused.add(path);
        await commit(batch.filter((p) => !refused.has(p.entry.path)));
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        for (const path of await call(() => conflictingPaths(redis, meta, newPaths))) refused.add(path);
        const rest = batch.filter((p) => !refused.has(p.entry.path));
        try {
          await commit(rest);
        } catch (again) {
          if (!(again instanceof ConflictError)) throw again;
          // Something else changed the paths meanwhile: one by one, refusing what conflicts.
          for (const item of rest) {
            try {
              await commit([item]);
            } catch (one) {
              if (!(one instanceof ConflictError)) throw one;
              refused.add(item.entry.path);
            }
          }
        }
      }
      for (const item of batch) {
        const c = item.page.counts;
        if (refused.has(item.entry.path)) skip(c, item.entry.origin?.key ?? item.entry.path, 'conflict-directory');
        else {
          c[item.kind] += 1;
          c.bytesReferenced += item.entry.size;
        }
        item.page.remaining -= 1;
      }
    };

    /** Full batches of what is pending (all of it when `all`), each taken when a commit slot is free. */
    function* flush(all: boolean): Generator<Pending[]> {
      while (pending.length >= batchSize || (all && pending.length > 0)) {
        const batch = pending.slice(0, batchSize);
        pending = pending.slice(batch.length);
        yield batch;
      }
      lastFlush = Date.now();
    }

    const classify = async (items: ObjectInfo[], page: PageState) => {
      const mapped = items.map((info) => ({ info, m: mapKey(target, info.key) }));
      const valid = mapped.flatMap(({ info, m }) => ('path' in m ? [{ info, path: m.path }] : []));
      const stored = valid.length === 0 ? [] : await call(() => redis.hmget(meta.keys.entries, ...valid.map((v) => v.path)));
      if (run.trackSeen)
        await call(() =>
          checkpoint.addSeen(
            run.run,
            valid.map((v) => v.path),
            seenTtl,
          ),
        );
      const existing = new Map<string, Entry>();
      valid.forEach((v, i) => {
        const json = stored[i];
        if (json) existing.set(v.path, decodeStoredEntry(json));
      });
      for (const { info, m } of mapped) {
        page.counts.listed += 1;
        page.counts.bytesListed += info.size;
        if ('reason' in m) {
          skip(page.counts, info.key, m.reason);
          continue;
        }
        const old = existing.get(m.path);
        if (old && !importedFrom(old, url, info.key)) skip(page.counts, info.key, 'conflict');
        else if (old && sameFingerprint(old, info)) page.counts.unchanged += 1;
        else {
          pending.push({ entry: importedEntry(url, m.path, info, chunkSize), kind: old ? 'changed' : 'new', page });
          page.remaining += 1;
        }
      }
      // Only now, with its outcome counted and no await since: while the lookups above were in
      // flight, batches finishing could fold every page in `pages` into the checkpoint.
      pages.push(page);
    };

    let failed = false;
    /**
     * The listing, page by page, as batches to commit. Pulled only when a commit slot is free, so
     * a slow Redis holds the listing back instead of letting pending entries pile up.
     */
    async function* batches(): AsyncGenerator<Pending[]> {
      // The next pages are listed while this one is compared and committed: listing never waits for Redis.
      const listing = origin.list('', { ...(run.cursor ? { cursor: run.cursor } : {}), pageSize: options.pageSize ?? 1000 });
      for await (const page of readAhead(listing, LIST_AHEAD)) {
        // A failed batch ends the run: stop listing now, not at the next batch this would yield.
        if (failed) return;
        await classify(page.items, { cursor: page.cursor, counts: emptyCounts(), remaining: 0 });
        listedHere += page.items.length;
        yield* flush(Date.now() - lastFlush >= 1000);
        advance();
        progress('list', [...pages.map((p) => p.counts)]);
      }
      yield* flush(true);
    }

    // The first failure stops the listing and waits for the batches in flight before it is thrown.
    await forEachLimit(batches(), concurrency, async (batch) => {
      try {
        await commitBatch(batch);
      } catch (err) {
        failed = true;
        throw err;
      }
      advance();
    });
    run.phase = 'delete';
    run.cursor = undefined;
    advance();
    save();
  }
  await saving;

  if (wantDelete) {
    // Every valid listed path must be in the seen set; if it is not (evicted, cleared by hand),
    // deleting would remove files whose objects still exist.
    const invalid = Object.entries(base.skippedBy).reduce((n, [r, k]) => n + (r.startsWith('conflict') ? 0 : (k ?? 0)), 0);
    const seen = await call(() => checkpoint.seenCount(run.run));
    if (seen < base.listed - invalid) {
      await call(() => checkpoint.clear(run.run));
      throw new CorruptError(
        `import ${url} into ${target}: the record of listed paths is incomplete (${seen} of ${base.listed - invalid}); nothing was deleted, run the import again`,
      );
    }
    await deleteVanished({
      meta,
      checkpoint,
      run,
      url,
      target,
      dryRun,
      concurrency,
      onDeleted: () => {
        base.deleted += 1;
      },
      onPage: () => {
        save();
        progress('delete', []);
      },
    });
    await saving;
  }
  if (dryRun) await call(() => checkpoint.clearSeen(run.run));
  else await call(() => checkpoint.clear(run.run));

  const seconds = (Date.now() - started) / 1000;
  return {
    origin: url,
    target,
    dryRun,
    delete: wantDelete,
    resumed,
    ...base,
    listedThisRun: listedHere,
    seconds,
    objectsPerSecond: Math.round(perSecond()),
  };
}

/**
 * Commit, and when garbage collection has claimed a chunk the entries name (an imported object
 * that became unreferenced and is referenced again), wait until its claim is over and commit
 * again: an imported chunk needs no upload, its origin holds it.
 */
async function commitPastClaims(meta: Meta, entries: NewEntry[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await meta.commit(entries);
      return;
    } catch (err) {
      if (!(err instanceof ChunkClaimedError) || attempt >= 3) throw err;
      await meta.waitUntilUnclaimed(err.chunks);
    }
  }
}
