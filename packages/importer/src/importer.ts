import { randomBytes } from 'node:crypto';
import { ConflictError, CorruptError, type Entry, forEachLimit, type Logger, type NewEntry, readAhead, silentLogger } from '@ferry/core';
import { FOLDER_BATCH, type Meta, volumePath } from '@ferry/meta';
import type { ObjectInfo, ObjectStore } from '@ferry/stores';
import { Checkpoint, type CheckpointState, emptyCounts, type ImportCounts } from './checkpoint.js';
import { commitImported } from './commit.js';
import { addCounts, skip } from './counts.js';
import { deleteVanished } from './delete.js';
import { importedEntry, importedFrom, sameFingerprint } from './entries.js';
import { importId, mapKey } from './keys.js';

export interface ImportOptions {
  /** The volume in the source region: imports are writes. */
  meta: Meta;
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
  /** Entries per change record (default FOLDER_BATCH.files, one commit step). */
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

/** Listing pages read ahead of the one being compared and committed (each at most `pageSize` keys). */
const LIST_AHEAD = 2;
const CONCURRENCY = 4;
/**
 * A batch is one commit step: a larger one is checked against the namespace up front (a second
 * pass over Redis for every path), which an import does not need, since it commits what it can
 * of a refused batch anyway (commitImported).
 */
const BATCH_SIZE = FOLDER_BATCH.files;
const PAGE_SIZE = 1000;
const PROGRESS_MS = 500;
/** A pending batch smaller than a whole one is committed after this long, so a slow listing still commits. */
const FLUSH_MS = 1000;
/** A dry run's seen set is a scratch key that expires even if the process dies. */
const DRY_SEEN_TTL_SECONDS = 3600;

/**
 * Import the objects under an origin prefix as files under `target`, without copying them.
 * The listing is paged (memory holds a page plus the batches in flight); each object's
 * fingerprint is compared with the entry imported from it, and only new or changed objects are
 * committed, in batches, each one change record. The checkpoint (listing cursor + counts) moves
 * only past pages whose entries are all committed, so a crash resumes where it left off and a
 * re-run converges on the same entries. Deletes (sync) happen only after a complete listing.
 */
export async function importPrefix(options: ImportOptions): Promise<ImportSummary> {
  const run = await ImportRun.open(options);
  if (run.state.phase === 'list') await run.list();
  await run.saved();
  if (run.wantDelete) await run.deleteVanished();
  return run.finish();
}

/**
 * One run of an import, in phases: open (resume a checkpoint or start one), list (classify each
 * listed object against its entry, commit new and changed ones in batches, fold finished pages
 * into the checkpoint), delete (after a complete listing, the imported files whose objects are
 * gone), finish (drop the checkpoint, report).
 */
class ImportRun {
  readonly #o: ImportOptions;
  readonly #meta: Meta;
  readonly #url: string;
  readonly #target: string;
  readonly #log: Logger;
  readonly #checkpoint: Checkpoint;
  readonly #about: { origin: string; target: string };
  readonly #started = Date.now();
  readonly dryRun: boolean;
  readonly wantDelete: boolean;
  readonly resumed: boolean;
  /** What the checkpoint holds: the run, its phase, its cursor and the counts of finished pages. */
  readonly state: CheckpointState;
  #listedHere = 0;
  #lastProgress = Date.now();
  #saving: Promise<void> = Promise.resolve();

  private constructor(options: ImportOptions, target: string, checkpoint: Checkpoint, state: CheckpointState, resumed: boolean) {
    this.#o = options;
    this.#meta = options.meta;
    this.#url = options.originUrl;
    this.#target = target;
    this.#log = (options.logger ?? silentLogger).child({ import: this.#url, target });
    this.#checkpoint = checkpoint;
    this.#about = { origin: this.#url, target };
    this.dryRun = options.dryRun ?? false;
    this.wantDelete = options.delete ?? false;
    this.state = state;
    this.resumed = resumed;
  }

  /** Resume the checkpoint of this origin and target, or start a run; the first save is under way when it returns. */
  static async open(options: ImportOptions): Promise<ImportRun> {
    const { meta } = options;
    const target = volumePath(options.target, 'import into');
    const dryRun = options.dryRun ?? false;
    const wantDelete = options.delete ?? false;
    const log = (options.logger ?? silentLogger).child({ import: options.originUrl, target });
    if (target !== '/' && (await meta.tryStat(target))) throw new ConflictError(`import into ${target}: is a file, not a directory`);
    const checkpoint = new Checkpoint({ meta, id: importId(options.originUrl, target) });
    let state = dryRun ? undefined : await checkpoint.load();
    if (state && wantDelete && !state.trackSeen) {
      // The interrupted run did not record the paths it listed; --delete needs all of them.
      log.info({ run: state.run }, 'interrupted import did not track listed paths; listing again from the start');
      await checkpoint.clear(state.run);
      state = undefined;
    }
    if (state && !wantDelete && state.trackSeen) {
      await checkpoint.clearSeen(state.run);
      state.trackSeen = false;
    }
    const resumed = state !== undefined;
    const run = new ImportRun(
      options,
      target,
      checkpoint,
      state ?? {
        run: `${dryRun ? 'dry-' : ''}${randomBytes(8).toString('hex')}`,
        phase: 'list',
        since: await meta.log.snapshotId(),
        trackSeen: wantDelete,
        counts: emptyCounts(),
      },
      resumed,
    );
    if (resumed)
      log.info({ run: run.state.run, phase: run.state.phase, listed: run.state.counts.listed }, 'resuming import from its checkpoint');
    run.#save();
    return run;
  }

  /** Save the checkpoint as it is now, after the saves before it (never in a dry run). */
  #save(): void {
    if (this.dryRun) return;
    const snapshot = structuredClone(this.state);
    this.#saving = this.#saving.then(() => this.#checkpoint.save(snapshot, this.#about));
    // Handled here so a failed save cannot crash the process before saved() reports it.
    this.#saving.catch(() => {});
  }

  /** The saves so far have landed (or their failure is thrown). */
  saved(): Promise<void> {
    return this.#saving;
  }

  #perSecond(): number {
    return this.#listedHere / Math.max(0.001, (Date.now() - this.#started) / 1000);
  }

  #progress(phase: 'list' | 'delete', extra: ImportCounts[]): void {
    const { onProgress } = this.#o;
    if (!onProgress || Date.now() - this.#lastProgress < (this.#o.progressMs ?? PROGRESS_MS)) return;
    this.#lastProgress = Date.now();
    const total = structuredClone(this.state.counts);
    for (const c of extra) addCounts(total, c);
    onProgress({ phase, ...total, objectsPerSecond: Math.round(this.#perSecond()) });
  }

  /** The listing phase: every page classified, its new and changed objects committed, the checkpoint moved past whole pages. */
  async list(): Promise<void> {
    const listing = new ListingPhase(this, this.#o);
    await listing.run();
    this.state.phase = 'delete';
    this.state.cursor = undefined;
    this.#save();
  }

  /** Called by the listing phase when pages are done: their counts and cursor enter the checkpoint. */
  pagesDone(pages: PageState[]): void {
    for (const page of pages) {
      addCounts(this.state.counts, page.counts);
      if (page.cursor !== undefined) this.state.cursor = page.cursor;
    }
    if (pages.length > 0) this.#save();
  }

  listed(n: number, inFlight: ImportCounts[]): void {
    this.#listedHere += n;
    this.#progress('list', inFlight);
  }

  get checkpoint(): Checkpoint {
    return this.#checkpoint;
  }

  get target(): string {
    return this.#target;
  }

  /** The delete phase: files this import made whose objects the complete listing no longer had. */
  async deleteVanished(): Promise<void> {
    const { counts } = this.state;
    // Every valid listed path must be in the seen set; if it is not (evicted, cleared by hand),
    // deleting would remove files whose objects still exist.
    const invalid = Object.entries(counts.skippedBy).reduce((n, [r, k]) => n + (r.startsWith('conflict') ? 0 : (k ?? 0)), 0);
    const seen = await this.#checkpoint.seenCount(this.state.run);
    if (seen < counts.listed - invalid) {
      await this.#checkpoint.clear(this.state.run);
      throw new CorruptError(
        `import ${this.#url} into ${this.#target}: the record of listed paths is incomplete (${seen} of ${counts.listed - invalid}); nothing was deleted, run the import again`,
      );
    }
    await deleteVanished({
      meta: this.#meta,
      checkpoint: this.#checkpoint,
      run: this.state,
      url: this.#url,
      target: this.#target,
      dryRun: this.dryRun,
      concurrency: Math.max(1, this.#o.concurrency ?? CONCURRENCY),
      onDeleted: () => {
        counts.deleted += 1;
        // Each delete is a change record of its own (a dry run writes none).
        if (!this.dryRun) counts.commits += 1;
      },
      onPage: () => {
        this.#save();
        this.#progress('delete', []);
      },
    });
    await this.#saving;
  }

  /** Drop the checkpoint (the run is complete) and report the whole import. */
  async finish(): Promise<ImportSummary> {
    if (this.dryRun) await this.#checkpoint.clearSeen(this.state.run);
    else await this.#checkpoint.clear(this.state.run);
    return {
      origin: this.#url,
      target: this.#target,
      dryRun: this.dryRun,
      delete: this.wantDelete,
      resumed: this.resumed,
      ...this.state.counts,
      listedThisRun: this.#listedHere,
      seconds: (Date.now() - this.#started) / 1000,
      objectsPerSecond: Math.round(this.#perSecond()),
    };
  }
}

/**
 * The listing phase of one run. The origin is listed from the checkpoint's cursor, a few pages
 * ahead of the one being compared; each page's objects are classified against the entries they
 * would map to (one Redis round trip a page); new and changed ones wait in `pending` until a whole
 * batch is there (or a second has passed) and are committed by up to `concurrency` commits at once.
 * A page counts as done when all its entries are committed, and pages are folded into the
 * checkpoint in listing order only, so the cursor never moves past an uncommitted entry.
 */
class ListingPhase {
  readonly #run: ImportRun;
  readonly #o: ImportOptions;
  readonly #batchSize: number;
  readonly #pages: PageState[] = [];
  #pending: Pending[] = [];
  #lastFlush = Date.now();
  #failed = false;

  constructor(run: ImportRun, options: ImportOptions) {
    this.#run = run;
    this.#o = options;
    this.#batchSize = Math.max(1, options.batchSize ?? BATCH_SIZE);
  }

  async run(): Promise<void> {
    // The first failure stops the listing and waits for the batches in flight before it is thrown.
    await forEachLimit(this.#batches(), Math.max(1, this.#o.concurrency ?? CONCURRENCY), async (batch) => {
      try {
        await this.#commit(batch);
      } catch (err) {
        this.#failed = true;
        throw err;
      }
      this.#advance();
    });
    this.#advance();
  }

  /** Fold finished pages, in listing order, into the checkpoint. */
  #advance(): void {
    const done: PageState[] = [];
    while (this.#pages[0] && this.#pages[0].remaining === 0) done.push(this.#pages.shift() as PageState);
    this.#run.pagesDone(done);
  }

  async #commit(batch: Pending[]): Promise<void> {
    const newPaths = batch.filter((p) => p.kind === 'new').map((p) => p.entry.path);
    const { refused, records } = await commitImported(
      this.#o.meta,
      batch.map((p) => p.entry),
      newPaths,
      this.#run.dryRun,
    );
    const last = batch.at(-1);
    if (last) last.page.counts.commits += records;
    for (const item of batch) {
      const c = item.page.counts;
      if (refused.has(item.entry.path)) skip(c, item.entry.origin?.key ?? item.entry.path, 'conflict-directory');
      else {
        c[item.kind] += 1;
        c.bytesReferenced += item.entry.size;
      }
      item.page.remaining -= 1;
    }
  }

  /** Full batches of what is pending (all of it when `all`), each taken when a commit slot is free. */
  *#flush(all: boolean): Generator<Pending[]> {
    while (this.#pending.length >= this.#batchSize || (all && this.#pending.length > 0)) {
      const batch = this.#pending.slice(0, this.#batchSize);
      this.#pending = this.#pending.slice(batch.length);
      yield batch;
    }
    this.#lastFlush = Date.now();
  }

  /** Compare one listed page with the entries its keys map to; new and changed objects join `pending`. */
  async #classify(items: ObjectInfo[], page: PageState): Promise<void> {
    const { meta, originUrl: url, chunkSize } = this.#o;
    const run = this.#run;
    const mapped = items.map((info) => ({ info, m: mapKey(run.target, info.key) }));
    const valid = mapped.flatMap(({ info, m }) => ('path' in m ? [{ info, path: m.path }] : []));
    const stored = await meta.statMany(valid.map((v) => v.path));
    if (run.state.trackSeen) {
      const ttl = run.dryRun ? DRY_SEEN_TTL_SECONDS : undefined;
      await run.checkpoint.addSeen(
        run.state.run,
        valid.map((v) => v.path),
        ttl,
      );
    }
    const existing = new Map<string, Entry>();
    valid.forEach((v, i) => {
      const entry = stored[i];
      if (entry) existing.set(v.path, entry);
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
        this.#pending.push({ entry: importedEntry(url, m.path, info, chunkSize), kind: old ? 'changed' : 'new', page });
        page.remaining += 1;
      }
    }
    // Only now, with its outcome counted and no await since: while the lookups above were in
    // flight, batches finishing could fold every page in `pages` into the checkpoint.
    this.#pages.push(page);
  }

  /**
   * The listing, page by page, as batches to commit. Pulled only when a commit slot is free, so
   * a slow Redis holds the listing back instead of letting pending entries pile up.
   */
  async *#batches(): AsyncGenerator<Pending[]> {
    const cursor = this.#run.state.cursor;
    // The next pages are listed while this one is compared and committed: listing never waits for Redis.
    const listing = this.#o.origin.list('', { ...(cursor ? { cursor } : {}), pageSize: this.#o.pageSize ?? PAGE_SIZE });
    for await (const page of readAhead(listing, LIST_AHEAD)) {
      // A failed batch ends the run: stop listing now, not at the next batch this would yield.
      if (this.#failed) return;
      await this.#classify(page.items, { cursor: page.cursor, counts: emptyCounts(), remaining: 0 });
      yield* this.#flush(Date.now() - this.#lastFlush >= FLUSH_MS);
      this.#advance();
      this.#run.listed(
        page.items.length,
        this.#pages.map((p) => p.counts),
      );
    }
    yield* this.#flush(true);
  }
}
