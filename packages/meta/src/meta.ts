import {
  ConflictError,
  type Entry,
  InvalidArgumentError,
  isWithin,
  type Logger,
  type NewEntry,
  NotDurableError,
  NotFoundError,
  silentLogger,
  UnavailableError,
} from '@ferry/core';
import { Cluster, type Redis } from 'ioredis';
import { ChangeLog } from './change-log.js';
import { type CommitOptions, commitInSteps } from './commits.js';
import { keySlot } from './slots.js';

export { GC_DELETED_KEEP_MS } from './commits.js';

import { conflictingPaths } from './conflicts.js';
import { decodeStoredEntry, validateNewEntry, volumePath } from './entry.js';
import { type DeleteResult, deleteInBatches, FOLDER_BATCH, type FolderOps, type RenameResult, renameInBatches } from './folders.js';
import { ImportCheckpointStore } from './import-checkpoint.js';
import { parseVolume, type VolumeKeys, volumeKeys } from './keys.js';
import { type ListOptions, type ListPage, listLimit, listStart, parseListReply } from './list.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';
import { ChunkRefs } from './refs.js';
import { runScript } from './scripts.js';

export interface MetaOptions {
  /** Client for all commands but blocking reads. Not owned: `close()` leaves it connected. */
  redis: RedisClient;
  volume: string;
  /** Approximate number of change records the log keeps (XADD MAXLEN ~). Default 1,000,000. */
  logMaxLen?: number;
  /** Most files one record of a folder delete or rename holds (default FOLDER_BATCH.files). */
  folderBatchFiles?: number;
  /** Most chunk occurrences one record of a folder delete or rename covers past its first file (default FOLDER_BATCH.chunks). */
  folderBatchChunks?: number;
  /** Most bytes of entries one record of a folder delete or rename covers past its first file (default FOLDER_BATCH.bytes). */
  folderBatchBytes?: number;
  logger?: Logger;
  /**
   * Replicas that must confirm each change (WAIT) before commit, delete and rename return; fewer
   * within `timeoutMs` is NotDurableError. Absent: no wait (one server, or none configured).
   */
  replicas?: { minReplicas: number; timeoutMs: number };
}

export interface CommitResult {
  /** Id of the last change record (the only one unless `batches` > 1). */
  version: string;
  /** Change records written: 1 unless the entries were more than one step (FOLDER_BATCH). */
  batches: number;
  /** The committed entries, each with the version of the record that wrote it. */
  entries: Entry[];
}

export interface ScanPage {
  entries: Entry[];
  /** Present when there is more: pass it to the next call. */
  cursor?: string;
}

export const DEFAULT_LOG_MAX_LEN = 1_000_000;

/** The cluster client's connection to the master that serves `key`'s slot. */
function slotMaster(cluster: Cluster, key: string): Redis {
  const owner = (cluster as unknown as { slots: string[][] }).slots[keySlot(key)]?.[0];
  const node = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
  if (!node) throw new UnavailableError(`no master known for the slot of ${key} yet (the cluster client is still learning its slots)`);
  return node;
}

function count(value: number | undefined, fallback: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max)
    throw new InvalidArgumentError(`invalid ${what} ${value}: expected 1..${max}`);
  return value;
}

/** The batch must not hold a path twice or a path under another one of the batch. */
function checkBatch(entries: NewEntry[]): void {
  const paths = new Set<string>();
  for (const { path } of entries) {
    if (paths.has(path)) throw new InvalidArgumentError(`commit ${path}: the path appears twice in the batch`);
    paths.add(path);
  }
  for (const path of paths) {
    for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) {
      const ancestor = path.slice(0, i);
      if (paths.has(ancestor)) throw new ConflictError(`commit ${path}: ${ancestor} is a file in the same batch`);
    }
  }
}

/**
 * The metadata of one volume in its region's Redis: entries, listing, and (on the source) the
 * mutations, each one atomic Lua script that also appends exactly one change record.
 */
/** The volume's folder of Ferry's own entries (`/.ferry/rev`: retained revisions), hidden from listings of `/`. */
export const RESERVED = '/.ferry';

export class Meta extends RedisPart {
  readonly volume: string;
  readonly keys: VolumeKeys;
  readonly #logMaxLen: number;
  readonly #batchFiles: number;
  readonly #batchChunks: number;
  readonly #batchBytes: number;
  readonly #log: Logger;
  readonly #replicas: MetaOptions['replicas'];
  /** The change log (source side), the acks of the mirrors that follow it. */
  readonly log: ChangeLog;
  /** Reference counts of chunks and garbage collection's claims on them. */
  readonly refs: ChunkRefs;

  constructor(options: MetaOptions) {
    super(options.redis);
    this.volume = parseVolume(options.volume);
    this.keys = volumeKeys(this.volume);
    this.#logMaxLen = count(options.logMaxLen, DEFAULT_LOG_MAX_LEN, Number.MAX_SAFE_INTEGER, 'logMaxLen');
    this.#batchFiles = count(options.folderBatchFiles, FOLDER_BATCH.files, 100_000, 'folderBatchFiles');
    this.#batchChunks = count(options.folderBatchChunks, FOLDER_BATCH.chunks, 10_000_000, 'folderBatchChunks');
    this.#batchBytes = count(options.folderBatchBytes, FOLDER_BATCH.bytes, 2 ** 30, 'folderBatchBytes');
    this.#log = (options.logger ?? silentLogger).child({ volume: this.volume });
    this.#replicas = options.replicas;
    this.log = new ChangeLog({ redis: options.redis, keys: this.keys });
    this.refs = new ChunkRefs({ redis: options.redis, keys: this.keys });
  }

  /**
   * Wait until `minReplicas` replicas have every write this connection made so far (the change
   * just made included), else NotDurableError: the master has the change, a failover could lose it.
   */
  async #durable(what: string): Promise<void> {
    const replicas = this.#replicas;
    if (!replicas) return;
    // In a Cluster, WAIT goes to the connection that took the writes: the master of the volume's slot.
    const connection = this.redis instanceof Cluster ? slotMaster(this.redis, this.keys.entries) : this.redis;
    const acked = Number(await this.call(() => connection.wait(replicas.minReplicas, replicas.timeoutMs)));
    if (acked >= replicas.minReplicas) return;
    throw new NotDurableError(
      `${what}: applied, but ${acked} of ${replicas.minReplicas} replica${replicas.minReplicas === 1 ? '' : 's'} confirmed it within ${replicas.timeoutMs} ms, so a failover now could lose it; running the command again is safe`,
    );
  }

  /** The Redis server's clock, ms: what `commit`'s `since` is compared with. */
  async serverTime(): Promise<number> {
    const [sec, usec] = await this.call(() => this.redis.time());
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  /** The entry of a file; NotFoundError when there is none (also for a directory). */
  async stat(path: string): Promise<Entry> {
    const p = volumePath(path, 'stat');
    const entry = await this.tryStat(p);
    if (entry) return entry;
    const under = p === '/' ? ['/'] : await this.call(() => this.redis.zrangebylex(this.keys.paths, `[${p}/`, `(${p}0`, 'LIMIT', 0, 1));
    throw new NotFoundError(under.length > 0 ? `stat ${p}: no such file; it is a directory` : `stat ${p}: no such file`);
  }

  /** The entry of a file, or undefined. */
  async tryStat(path: string): Promise<Entry | undefined> {
    const p = volumePath(path, 'stat');
    const json = await this.call(() => this.redis.hget(this.keys.entries, p));
    return json === null ? undefined : decodeStoredEntry(json);
  }

  /** The entries of many files in one round trip, in the same order (undefined where there is none). */
  async statMany(paths: readonly string[]): Promise<Array<Entry | undefined>> {
    if (paths.length === 0) return [];
    const valid = paths.map((p) => volumePath(p, 'stat'));
    const found = await this.call(() => this.redis.hmget(this.keys.entries, ...valid));
    return found.map((json) => (json === null ? undefined : decodeStoredEntry(json)));
  }

  /**
   * Paths of `paths` that cannot become files: the path is an existing directory, or one of its
   * ancestors is a file (here or earlier in the same list). One pipelined round trip.
   */
  conflictingPaths(paths: readonly string[]): Promise<Set<string>> {
    return this.call(() => conflictingPaths(this.redis, this.keys, paths));
  }

  /** Where the import `id` (origin + target) keeps its checkpoint, beside this volume's keys. */
  importCheckpoint(id: string): ImportCheckpointStore {
    return new ImportCheckpointStore({ redis: this.redis, volume: this.volume, id });
  }

  /**
   * One page of a directory: its files and sub-directories (each once), or with `recursive`
   * every file under it, in lexicographic order (a directory sorts as "<name>/"). Reads only the
   * page. A file path lists that file. NotFoundError when nothing exists at a path other than "/".
   */
  async list(dir: string, options: ListOptions = {}): Promise<ListPage> {
    const d = volumePath(dir, 'list');
    const limit = listLimit(options.limit);
    const start = listStart(d, options.cursor);
    const args = [d, start, limit, options.recursive ? '1' : '0'];
    const reply = await this.call(() => runScript(this.redis, 'list', [this.keys.paths, this.keys.entries], args));
    const page = parseListReply(reply as string[]);
    if (page.items.length === 0 && start === '' && d !== '/') throw new NotFoundError(`list ${d}: no such file or directory`);
    // Ferry's own folder (retained revisions) is not part of what a listing of the volume shows.
    if (d === '/')
      page.items = page.items.filter((i) => (i.kind === 'dir' ? i.path !== RESERVED : !i.entry.path.startsWith(`${RESERVED}/`)));
    return page;
  }

  /**
   * The file at `path`, or every file under the directory `path` (in path order, read page by
   * page). NotFoundError when there is neither. Holds the entries in memory: for a model or a
   * folder of models, not for walking a whole large volume (use `list` pages for that).
   */
  async filesUnder(path: string): Promise<Entry[]> {
    const single = await this.tryStat(path);
    if (single) return [single];
    const found: Entry[] = [];
    let cursor: string | undefined;
    const missing = () => new NotFoundError(`${path}: no such file or directory`);
    do {
      let page: ListPage;
      try {
        page = await this.list(path, { recursive: true, limit: 1000, ...(cursor ? { cursor } : {}) });
      } catch (err) {
        if (err instanceof NotFoundError) throw missing();
        throw err;
      }
      for (const item of page.items) if (item.kind === 'file') found.push(item.entry);
      cursor = page.cursor;
    } while (cursor);
    if (found.length === 0) throw missing();
    return found;
  }

  /**
   * Write entries (new or replacing files): as one atomic change record when they fit in one step
   * (FOLDER_BATCH: 250 files, 1,000 chunks, 1 MiB of entries), else as one record per step, in
   * the order given, each atomic; a conflict with the namespace is refused before the first step
   * (see commits.ts). Every file is always whole; while a larger commit runs, readers and mirrors
   * may see the steps already written. Replicas are waited for once, after the last step. `since` is the server
   * time (`serverTime()`) at which the writer began to look at references and the store to skip
   * uploads: ChunkClaimedError names the chunks garbage collection claimed, or deleted since then
   * (upload them again, then commit again); a `since` older than GC_DELETED_KEEP_MS is refused
   * the same way, naming no chunk (look again). `held` is the expiry of the put's chunk holds
   * (`ChunkRefs.hold`) when they never lapsed: chunks held then need neither check.
   */
  async commit(entries: NewEntry[], options: CommitOptions = {}): Promise<CommitResult> {
    if (!Array.isArray(entries) || entries.length === 0) throw new InvalidArgumentError('commit: no entries');
    const valid = entries.map(validateNewEntry);
    checkBatch(valid);
    const { version, versions, batches } = await this.call(() => commitInSteps(this.#folderOps(), valid, options));
    const files = `${valid.length} file${valid.length === 1 ? '' : 's'}`;
    await this.#durable(`commit of ${files} at version ${version}${batches > 1 ? ` (${batches} records)` : ''}`);
    return { version, batches, entries: valid.map((e, i) => ({ ...e, version: versions[i] ?? version })) };
  }

  /**
   * Remove a file, or with `recursive` every file under a directory: one change record for a file
   * or a folder of up to one batch (FOLDER_BATCH), else one record per batch, in path order. An
   * interrupted delete of a large folder leaves the files of the batches not yet written; running
   * it again removes them.
   */
  async delete(path: string, options: { recursive?: boolean } = {}): Promise<DeleteResult> {
    const p = volumePath(path, 'delete');
    const result = await this.call(() => deleteInBatches(this.#folderOps(), p, options.recursive ?? false));
    await this.#durable(`delete ${p}`);
    return result;
  }

  /**
   * Move a file, or a directory with everything under it: one change record for a file or a
   * folder of up to one batch (FOLDER_BATCH), else one record per batch, in path order. While a
   * batched move is under way both folders exist; if it is interrupted, the same call again
   * finishes it (the move is remembered in Redis until its last batch).
   */
  async rename(from: string, to: string): Promise<RenameResult> {
    const src = volumePath(from, 'rename');
    const dst = volumePath(to, `rename ${src} to`);
    const what = `rename ${src} to ${dst}`;
    if (src === '/') throw new InvalidArgumentError(`${what}: cannot move the root`);
    if (dst === '/') throw new ConflictError(`${what}: / already exists`);
    if (isWithin(dst, src)) throw new ConflictError(`${what}: cannot move ${src} into itself`);
    const result = await this.call(() => renameInBatches(this.#folderOps(), src, dst));
    await this.#durable(what);
    return result;
  }

  #folderOps(): FolderOps {
    return {
      redis: this.redis,
      keys: this.keys,
      logMaxLen: this.#logMaxLen,
      batchFiles: this.#batchFiles,
      batchChunks: this.#batchChunks,
      batchBytes: this.#batchBytes,
      log: this.#log,
    };
  }

  /**
   * A page of entries in hash order (HSCAN), for a full resync; see snapshotId. An entry may be
   * returned twice across pages; entries that exist for the whole scan are returned at least once.
   */
  async scanEntries(options: { cursor?: string; count?: number } = {}): Promise<ScanPage> {
    const cursor = options.cursor ?? '0';
    if (!/^\d+$/.test(cursor)) throw new InvalidArgumentError('invalid scan cursor: pass the cursor of the previous page unchanged');
    const n = count(options.count, 1000, 100_000, 'count');
    const [next, flat] = await this.call(() => this.redis.hscan(this.keys.entries, cursor, 'COUNT', n));
    const entries = flat.filter((_, i) => i % 2 === 1).map(decodeStoredEntry);
    return next === '0' ? { entries } : { entries, cursor: next };
  }

  /** Close the change log's blocking-read connection, if any; a pending blocking read returns []. */
  close(): Promise<void> {
    return this.log.close();
  }
}
