import {
  ChunkClaimedError,
  ConflictError,
  type Entry,
  InvalidArgumentError,
  isWithin,
  type Logger,
  type NewEntry,
  NotFoundError,
  parseChunkId,
  silentLogger,
} from '@ferry/core';
import { chunkIdList, decodeStoredEntry, entryRest, validateNewEntry, volumePath } from './entry.js';
import {
  type DeleteResult,
  deleteInBatches,
  epochCandidate,
  FOLDER_BATCH,
  type FolderOps,
  outcome,
  type RenameResult,
  renameInBatches,
} from './folders.js';
import { parseStreamId } from './ids.js';
import { parseRegion, parseVolume, type VolumeKeys, volumeKeys } from './keys.js';
import { type ListOptions, type ListPage, listLimit, listStart, parseListReply } from './list.js';
import { type LogBounds, parseXinfo, type SourceHistory, xinfoAdded } from './log.js';
import { type ChangeRecord, parseChangeRecord, type RawStreamRecord } from './record.js';
import { duplicateConnection, type RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';
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
}

export interface CommitResult {
  /** Id of the one change record; the version of every committed entry. */
  version: string;
  entries: Entry[];
}

export interface ReadChangesOptions {
  /** Most records to return, 1..10000 (default 1000). */
  count?: number;
  /** Wait up to this long for a record when there is none (0 waits forever). Omit to not wait. */
  blockMs?: number;
}

export interface ScanPage {
  entries: Entry[];
  /** Present when there is more: pass it to the next call. */
  cursor?: string;
}

export const DEFAULT_LOG_MAX_LEN = 1_000_000;

/**
 * How long the time GC finished deleting a chunk is kept (lua/gc-finish.lua): a writer's look at
 * the store older than this cannot be checked against it, so its commit is refused.
 */
export const GC_DELETED_KEEP_MS = 24 * 3600_000;

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
export class Meta {
  readonly volume: string;
  readonly keys: VolumeKeys;
  readonly #redis: RedisClient;
  readonly #logMaxLen: number;
  readonly #batchFiles: number;
  readonly #batchChunks: number;
  readonly #batchBytes: number;
  readonly #log: Logger;
  #blocking: RedisClient | undefined;
  #closed = false;

  constructor(options: MetaOptions) {
    this.volume = parseVolume(options.volume);
    this.keys = volumeKeys(this.volume);
    this.#redis = options.redis;
    this.#logMaxLen = count(options.logMaxLen, DEFAULT_LOG_MAX_LEN, Number.MAX_SAFE_INTEGER, 'logMaxLen');
    this.#batchFiles = count(options.folderBatchFiles, FOLDER_BATCH.files, 100_000, 'folderBatchFiles');
    this.#batchChunks = count(options.folderBatchChunks, FOLDER_BATCH.chunks, 10_000_000, 'folderBatchChunks');
    this.#batchBytes = count(options.folderBatchBytes, FOLDER_BATCH.bytes, 2 ** 30, 'folderBatchBytes');
    this.#log = (options.logger ?? silentLogger).child({ volume: this.volume });
  }

  /** The Redis server's clock, ms: what `commit`'s `since` is compared with. */
  async serverTime(): Promise<number> {
    const [sec, usec] = await this.#call(() => this.#redis.time());
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  async #call<T>(fn: () => Promise<T>, redis: RedisClient = this.#redis): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateRedisError(err, redis);
    }
  }

  /** The entry of a file; NotFoundError when there is none (also for a directory). */
  async stat(path: string): Promise<Entry> {
    const p = volumePath(path, 'stat');
    const entry = await this.tryStat(p);
    if (entry) return entry;
    const under = p === '/' ? ['/'] : await this.#call(() => this.#redis.zrangebylex(this.keys.paths, `[${p}/`, `(${p}0`, 'LIMIT', 0, 1));
    throw new NotFoundError(under.length > 0 ? `stat ${p}: no such file; it is a directory` : `stat ${p}: no such file`);
  }

  /** The entry of a file, or undefined. */
  async tryStat(path: string): Promise<Entry | undefined> {
    const p = volumePath(path, 'stat');
    const json = await this.#call(() => this.#redis.hget(this.keys.entries, p));
    return json === null ? undefined : decodeStoredEntry(json);
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
    const reply = await this.#call(() => runScript(this.#redis, 'list', [this.keys.paths, this.keys.entries], args));
    const page = parseListReply(reply as string[]);
    if (page.items.length === 0 && start === '' && d !== '/') throw new NotFoundError(`list ${d}: no such file or directory`);
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
    do {
      const page = await this.list(path, { recursive: true, limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const item of page.items) if (item.kind === 'file') found.push(item.entry);
      cursor = page.cursor;
    } while (cursor);
    if (found.length === 0) await this.stat(path); // the one-line NotFound for the path
    return found;
  }

  /**
   * Write entries (new or replacing files) as one atomic change record. `since` is the server
   * time (`serverTime()`) at which the writer began to look at references and the store to skip
   * uploads: ChunkClaimedError names the chunks garbage collection claimed, or deleted since then
   * (upload them again, then commit again); a `since` older than GC_DELETED_KEEP_MS is refused
   * the same way, naming no chunk (look again).
   */
  async commit(entries: NewEntry[], options: { since?: number } = {}): Promise<CommitResult> {
    if (!Array.isArray(entries) || entries.length === 0) throw new InvalidArgumentError('commit: no entries');
    const valid = entries.map(validateNewEntry);
    checkBatch(valid);
    const since = options.since === undefined ? '' : String(Math.floor(options.since));
    const args = [
      this.#logMaxLen,
      epochCandidate(),
      since,
      GC_DELETED_KEEP_MS,
      ...valid.flatMap((e) => [e.path, entryRest(e), chunkIdList(e)]),
    ];
    const { entries: h, paths, log, refs, unreferenced, epoch, unreferencedBy, gcClaims, gcDeleted } = this.keys;
    const keys = [h, paths, log, refs, unreferenced, epoch, unreferencedBy, gcClaims, gcDeleted];
    const reply = await this.#call(() => runScript(this.#redis, 'commit', keys, args));
    const result = outcome(reply);
    if ('failure' in result) {
      if (result.failure === 'claimed' || result.failure === 'stale') {
        const chunks = result.args;
        const why =
          chunks.length > 0
            ? `garbage collection deleted or is deleting ${chunks.length} of its chunks (${chunks[0]}…)`
            : 'its look at the store is too old';
        throw new ChunkClaimedError(`commit: ${why}; upload them again`, { chunks });
      }
      const [path, ancestor] = result.args;
      if (result.failure === 'dir') throw new ConflictError(`commit ${path}: is an existing directory`);
      if (result.failure === 'file') throw new ConflictError(`commit ${path}: ${ancestor} is a file`);
      throw new Error(`commit: unexpected script reply ${result.failure}`);
    }
    this.#log.debug({ version: result.version, entries: valid.length }, 'committed');
    return { version: result.version, entries: valid.map((e) => ({ ...e, version: result.version })) };
  }

  /**
   * Remove a file, or with `recursive` every file under a directory: one change record for a file
   * or a folder of up to one batch (FOLDER_BATCH), else one record per batch, in path order. An
   * interrupted delete of a large folder leaves the files of the batches not yet written; running
   * it again removes them.
   */
  async delete(path: string, options: { recursive?: boolean } = {}): Promise<DeleteResult> {
    const p = volumePath(path, 'delete');
    return this.#call(() => deleteInBatches(this.#folderOps(), p, options.recursive ?? false));
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
    return this.#call(() => renameInBatches(this.#folderOps(), src, dst));
  }

  #folderOps(): FolderOps {
    return {
      redis: this.#redis,
      keys: this.keys,
      logMaxLen: this.#logMaxLen,
      batchFiles: this.#batchFiles,
      batchChunks: this.#batchChunks,
      batchBytes: this.#batchBytes,
      log: this.#log,
    };
  }

  /**
   * Change records after `afterId`, oldest first. With `blockMs` it waits for one on a dedicated
   * connection (created on first use, closed by `close()`); after `close()` it returns [].
   */
  async readChanges(afterId: string, options: ReadChangesOptions = {}): Promise<ChangeRecord[]> {
    const after = parseStreamId(afterId, 'change-log cursor');
    const n = count(options.count, 1000, 10_000, 'count');
    const { blockMs } = options;
    if (this.#closed) return [];
    let reply: Array<[string, RawStreamRecord[]]> | null;
    if (blockMs === undefined) {
      reply = await this.#call(() => this.#redis.xread('COUNT', n, 'STREAMS', this.keys.log, after));
    } else {
      if (!Number.isSafeInteger(blockMs) || blockMs < 0) throw new InvalidArgumentError(`invalid blockMs ${blockMs}: expected ms >= 0`);
      this.#blocking ??= duplicateConnection(this.#redis, `ferry-meta-${this.volume}-xread`);
      const blocking = this.#blocking;
      try {
        reply = await this.#call(() => blocking.xread('COUNT', n, 'BLOCK', blockMs, 'STREAMS', this.keys.log, after), blocking);
      } catch (err) {
        if (this.#closed) return [];
        throw err;
      }
    }
    return (reply?.[0]?.[1] ?? []).map(parseChangeRecord);
  }

  /** Oldest and newest ids and the length of the change log. */
  async logBounds(): Promise<LogBounds> {
    try {
      return parseXinfo((await this.#redis.xinfo('STREAM', this.keys.log)) as unknown[]);
    } catch (err) {
      if (/no such key/i.test(String((err as Error)?.message))) return { length: 0, trimmed: 0 };
      throw translateRedisError(err, this.#redis);
    }
  }

  /**
   * The source's history as a mirror checks it, in one atomic step: the volume's epoch (made now
   * if the source's Redis has none), the log's bounds, and whether the record at `cursor` is
   * still in the log.
   */
  async history(cursor?: string, options: { create?: boolean } = {}): Promise<SourceHistory> {
    const at = cursor === undefined ? undefined : parseStreamId(cursor, 'change-log cursor');
    const { log, epoch } = this.keys;
    // MULTI/EXEC rather than a script: XINFO and XRANGE hand whole records back, which in Lua
    // would be garbage every later script pays for in collection time.
    const tx = this.#redis.multi();
    if (options.create !== false) tx.set(epoch, epochCandidate(), 'NX');
    tx.get(epoch).xinfo('STREAM', log);
    if (at !== undefined && at !== '0-0') tx.xrange(log, at, at);
    const replies = (await this.#call(() => tx.exec())) ?? [];
    const results = replies.slice(options.create !== false ? 1 : 0);
    const [epochReply, infoReply, found] = results as Array<[Error | null, unknown] | undefined>;
    const epochValue = epochReply?.[1];
    const [infoErr, info] = infoReply ?? [new Error('no reply'), undefined];
    if (infoErr && !/no such key/i.test(infoErr.message)) throw translateRedisError(infoErr, this.#redis);
    const bounds = infoErr ? { length: 0, trimmed: 0 } : parseXinfo(info as unknown[]);
    const added = infoErr ? 0 : xinfoAdded(info as unknown[]);
    const cursorFound = Array.isArray(found?.[1]) && (found[1] as unknown[]).length > 0;
    return { ...bounds, epoch: (epochValue as string | null) ?? '', added, cursorFound };
  }

  /** The id of the first record after `cursor` (from the start when undefined), if any. */
  async firstAfter(cursor: string | undefined): Promise<string | undefined> {
    const from = cursor === undefined ? '-' : `(${parseStreamId(cursor, 'change-log cursor')}`;
    const [first] = await this.#call(() => this.#redis.xrange(this.keys.log, from, '+', 'COUNT', 1));
    return first?.[0];
  }

  /**
   * The Redis server's run id: it changes when the server restarts or another server answers
   * (a failover). A hash scan's cursor means nothing across such a change.
   */
  async serverRunId(): Promise<string> {
    const info = await this.#call(() => this.#redis.info('server'));
    return /^run_id:(\S+)/m.exec(info)?.[1] ?? '';
  }

  /**
   * The id a full resync starts the log from: take it BEFORE scanEntries, then apply the scan,
   * then the log after this id. Entries that change during the scan are written again by those
   * records, and applying only strictly newer versions makes seeing them twice harmless.
   */
  async snapshotId(): Promise<string> {
    return (await this.logBounds()).last ?? '0-0';
  }

  /** Trim the log to about `maxLen` records (whole stream nodes, so possibly fewer removed). */
  async trimLog(maxLen: number, options: { exact?: boolean } = {}): Promise<number> {
    if (!Number.isSafeInteger(maxLen) || maxLen < 0) throw new InvalidArgumentError(`invalid maxLen ${maxLen}: expected a count >= 0`);
    const { log } = this.keys;
    return this.#call(() =>
      options.exact ? this.#redis.xtrim(log, 'MAXLEN', '=', maxLen) : this.#redis.xtrim(log, 'MAXLEN', '~', maxLen),
    );
  }

  /** Occurrences of a chunk across all entries (0 when unreferenced). */
  async refCount(chunkId: string): Promise<number> {
    const id = parseChunkId(chunkId);
    return Number((await this.#call(() => this.#redis.hget(this.keys.refs, id))) ?? 0);
  }

  /** refCount of many chunks in one round trip, in the same order. */
  async refCounts(chunkIds: readonly string[]): Promise<number[]> {
    if (chunkIds.length === 0) return [];
    const ids = chunkIds.map((id) => parseChunkId(id));
    const counts = await this.#call(() => this.#redis.hmget(this.keys.refs, ...ids));
    return counts.map((c) => Number(c ?? 0));
  }

  /** Of these chunks, those garbage collection has claimed (their objects are being deleted). */
  async claimedChunks(chunkIds: readonly string[]): Promise<string[]> {
    if (chunkIds.length === 0) return [];
    const claims = await this.#call(() => this.#redis.hmget(this.keys.gcClaims, ...chunkIds));
    return chunkIds.filter((_, i) => claims[i] !== null);
  }

  /**
   * Wait until garbage collection holds none of these chunks (its deletes are done), so a commit
   * refused with ChunkClaimedError can be tried again; ConflictError after `timeoutMs`.
   */
  async waitUntilUnclaimed(chunkIds: readonly string[], timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.claimedChunks(chunkIds)).length > 0) {
      if (Date.now() > deadline) {
        throw new ConflictError(`garbage collection still holds ${chunkIds.length} chunks this change needs; try again`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Record that `region` has applied the log up to `id`. Never moves an ack back; returns the ack now stored. */
  async setAck(region: string, id: string): Promise<string> {
    const args = [parseRegion(region), parseStreamId(id, 'ack id')];
    return String(await this.#call(() => runScript(this.#redis, 'ack', [this.keys.acks], args)));
  }

  /** Region → last applied change-log id. */
  async acks(): Promise<Record<string, string>> {
    return this.#call(() => this.#redis.hgetall(this.keys.acks));
  }

  /**
   * A page of entries in hash order (HSCAN), for a full resync; see snapshotId. An entry may be
   * returned twice across pages; entries that exist for the whole scan are returned at least once.
   */
  async scanEntries(options: { cursor?: string; count?: number } = {}): Promise<ScanPage> {
    const cursor = options.cursor ?? '0';
    if (!/^\d+$/.test(cursor)) throw new InvalidArgumentError('invalid scan cursor: pass the cursor of the previous page unchanged');
    const n = count(options.count, 1000, 100_000, 'count');
    const [next, flat] = await this.#call(() => this.#redis.hscan(this.keys.entries, cursor, 'COUNT', n));
    const entries = flat.filter((_, i) => i % 2 === 1).map(decodeStoredEntry);
    return next === '0' ? { entries } : { entries, cursor: next };
  }

  /** Close the blocking-read connection, if any; a pending blocking read returns []. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#blocking?.disconnect();
    this.#blocking = undefined;
  }
}
