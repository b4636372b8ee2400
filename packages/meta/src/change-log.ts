import { InvalidArgumentError } from '@ferry/core';
import { epochCandidate } from './folders.js';
import { parseStreamId } from './ids.js';
import type { VolumeKeys } from './keys.js';
import { mirrorAckKey } from './keys.js';
import { type LogBounds, parseXinfo, type SourceHistory, xinfoAdded } from './log.js';
import { type ChangeRecord, parseChangeRecord, type RawStreamRecord } from './record.js';
import { duplicateConnection, type RedisClient } from './redis.js';
import { isNoPermission, translateRedisError } from './redis-errors.js';
import { RedisPart } from './redis-part.js';
import { runScript } from './scripts.js';

export interface ReadChangesOptions {
  /** Most records to return, 1..10000 (default 1000). */
  count?: number;
  /** Wait up to this long for a record when there is none (0 waits forever). Omit to not wait. */
  blockMs?: number;
}

function count(value: number | undefined, fallback: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max)
    throw new InvalidArgumentError(`invalid ${what} ${value}: expected 1..${max}`);
  return value;
}

/**
 * The change log of a volume (a Redis stream in the source region) as mirrors read it: records
 * after a cursor (blocking on a connection of its own), the log's bounds, the history checks a
 * mirror makes before it trusts its cursor, and the acks mirrors leave after applying.
 */
export class ChangeLog extends RedisPart {
  readonly #keys: VolumeKeys;
  /** False once the server refused this client's write of the epoch (a Redis user with read access only). */
  #mayCreateEpoch = true;
  /** False once the server refused this client's write of the shared acks hash. */
  #writesSharedAcks = true;
  #blocking: RedisClient | undefined;
  #closed = false;

  constructor(options: { redis: RedisClient; keys: VolumeKeys }) {
    super(options.redis);
    this.#keys = options.keys;
  }

  get keys(): VolumeKeys {
    return this.#keys;
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
      reply = await this.call(() => this.redis.xread('COUNT', n, 'STREAMS', this.#keys.log, after));
    } else {
      if (!Number.isSafeInteger(blockMs) || blockMs < 0) throw new InvalidArgumentError(`invalid blockMs ${blockMs}: expected ms >= 0`);
      this.#blocking ??= duplicateConnection(this.redis, `ferry-meta-${this.#keys.log}-xread`);
      const blocking = this.#blocking;
      try {
        reply = await this.call(() => blocking.xread('COUNT', n, 'BLOCK', blockMs, 'STREAMS', this.#keys.log, after), blocking);
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
      return parseXinfo((await this.redis.xinfo('STREAM', this.#keys.log)) as unknown[]);
    } catch (err) {
      if (/no such key/i.test(String((err as Error)?.message))) return { length: 0, trimmed: 0 };
      throw translateRedisError(err, this.redis);
    }
  }

  /**
   * The source's history as a mirror checks it, in one atomic step: the volume's epoch (made now
   * if the source's Redis has none), the log's bounds, and whether the record at `cursor` is
   * still in the log.
   */
  async history(cursor?: string, options: { create?: boolean } = {}): Promise<SourceHistory> {
    const at = cursor === undefined ? undefined : parseStreamId(cursor, 'change-log cursor');
    const { log, epoch } = this.#keys;
    const create = options.create !== false && this.#mayCreateEpoch;
    // MULTI/EXEC rather than a script: XINFO and XRANGE hand whole records back, which in Lua
    // would be garbage every later script pays for in collection time.
    const tx = this.redis.multi();
    if (create) tx.set(epoch, epochCandidate(), 'NX');
    tx.get(epoch).xinfo('STREAM', log);
    if (at !== undefined && at !== '0-0') tx.xrange(log, at, at);
    let replies: Array<[Error | null, unknown]>;
    try {
      replies = (await this.call(() => tx.exec())) ?? [];
    } catch (err) {
      // A mirror's Redis user may not write the source: the source's writer makes the epoch then.
      if (!create || !isNoPermission(err)) throw err;
      this.#mayCreateEpoch = false;
      return this.history(cursor, options);
    }
    const results = replies.slice(create ? 1 : 0);
    const [epochReply, infoReply, found] = results as Array<[Error | null, unknown] | undefined>;
    const epochValue = epochReply?.[1];
    const [infoErr, info] = infoReply ?? [new Error('no reply'), undefined];
    if (infoErr && !/no such key/i.test(infoErr.message)) throw translateRedisError(infoErr, this.redis);
    const bounds = infoErr ? { length: 0, trimmed: 0 } : parseXinfo(info as unknown[]);
    const added = infoErr ? 0 : xinfoAdded(info as unknown[]);
    const cursorFound = Array.isArray(found?.[1]) && (found[1] as unknown[]).length > 0;
    return { ...bounds, epoch: (epochValue as string | null) ?? '', added, cursorFound };
  }

  /** The id of the first record after `cursor` (from the start when undefined), if any. */
  async firstAfter(cursor: string | undefined): Promise<string | undefined> {
    const from = cursor === undefined ? '-' : `(${parseStreamId(cursor, 'change-log cursor')}`;
    const [first] = await this.call(() => this.redis.xrange(this.#keys.log, from, '+', 'COUNT', 1));
    return first?.[0];
  }

  /**
   * The Redis server's run id: it changes when the server restarts or another server answers
   * (a failover). A hash scan's cursor means nothing across such a change.
   */
  async serverRunId(): Promise<string> {
    const info = await this.call(() => this.redis.info('server'));
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
    return this.call(() => (options.exact ? this.redis.xtrim(log, 'MAXLEN', '=', maxLen) : this.redis.xtrim(log, 'MAXLEN', '~', maxLen)));
  }

  /** Record that `region` has applied the log up to `id`. Never moves an ack back; returns the ack now stored. */
  async setAck(region: string, id: string): Promise<string> {
    const key = mirrorAckKey(this.#keys, region);
    const ack = String(await this.call(() => runScript(this.redis, 'ack', [key], [parseStreamId(id, 'ack id')])));
    // A source not upgraded yet reads the shared hash only: the ack goes there too while this
    // user may write it (a mirror's own user may not; then it stops trying).
    if (this.#writesSharedAcks) {
      await this.redis.hset(this.#keys.acks, region, ack).catch((err: unknown) => {
        if (!isNoPermission(err)) throw translateRedisError(err, this.redis);
        this.#writesSharedAcks = false;
      });
    }
    return ack;
  }

  /** Region → last applied change-log id, for these mirror regions (those without an ack are left out). */
  async acks(regions: readonly string[]): Promise<Record<string, string>> {
    if (regions.length === 0) return {};
    const [own, legacy] = await this.call(() =>
      Promise.all([this.redis.mget(...regions.map((r) => mirrorAckKey(this.#keys, r))), this.redis.hmget(this.#keys.acks, ...regions)]),
    );
    const acks: Record<string, string> = {};
    regions.forEach((region, i) => {
      const ack = own[i] ?? legacy[i];
      if (ack) acks[region] = ack;
    });
    return acks;
  }

  /** Close the blocking-read connection, if any; a pending blocking read returns []. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#blocking?.disconnect();
    this.#blocking = undefined;
  }
}
