import { GcRefusedError } from '@ferry/core';
import { GC_DELETED_KEEP_MS } from './commits.js';
import { mirrorAckKey, type VolumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { translateRedisError } from './redis-errors.js';
import { RedisPart } from './redis-part.js';
import { runScript } from './scripts.js';

const REFUSALS: Record<string, string> = {
  'no-cursor': 'its metadata has no cursor (a new or flushed Redis): every object would look like an orphan; the watcher resyncs it first',
  resync: 'a full resync is rebuilding its metadata',
  fenced: "this pass's fencing token is no longer the one its Redis holds (another replica leads, or the Redis lost its state)",
};

/** A claim script's refusal reply as GcRefusedError. */
function refused(reply: unknown[]): void {
  if (reply[0] !== 'refused') return;
  const reason = String(reply[1]);
  throw new GcRefusedError(`garbage collection refused: ${REFUSALS[reason] ?? reason}; nothing was deleted`, { reason });
}

/** Why collection refuses, as a sentence (status and errors). */
export function gcRefusalText(reason: string): string {
  return REFUSALS[reason] ?? reason;
}

/** One step of `GcMeta.claim`. */
export interface ClaimBatch {
  /** Chunks claimed (or, dry, that would be): delete their objects, then `finish` them. */
  claimable: string[];
  /** Chunks past grace kept because these mirrors have not acknowledged the record that dropped them. */
  held: Array<{ chunk: string; mirrors: string[] }>;
  /** Members of the unreferenced set read; fewer than `limit` means the end. */
  read: number;
  /** Chunks past grace kept because a running put holds them (lua/hold.lua). */
  kept: number;
}

export interface ClaimOptions {
  /** Only chunks unreferenced at or before this server time (ms). */
  cutoff: number;
  /** Members to skip (those held by earlier steps of the same pass). */
  offset: number;
  limit: number;
  dryRun: boolean;
  /** In the source: the mirror regions whose acks gate collection. Empty in a mirror. */
  mirrors: readonly string[];
}

/** A mirror's fencing token for collection steps ('' for a pass that leads through no lease). */
export interface GcCaller {
  token: string;
}

/**
 * The Redis side of garbage collection in one region (protocol: lua/gc-claim.lua): claims of
 * unreferenced chunks and of orphans, the end of a claim after the object is deleted, and the
 * counters that status and metrics show.
 */
export class GcMeta extends RedisPart {
  readonly #keys: VolumeKeys;
  readonly #mirror: boolean;

  constructor(options: { redis: RedisClient; keys: VolumeKeys; mirror: boolean }) {
    super(options.redis);
    this.#keys = options.keys;
    this.#mirror = options.mirror;
  }

  async serverTime(): Promise<number> {
    const [sec, usec] = await this.call(() => this.redis.time());
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  /**
   * Whether collection may run here now: undefined, or why not (see lua/common.lua gc_refusal).
   * The claim scripts check the same in each step, so a Redis flushed mid-pass stops the pass.
   */
  async refusal(caller: GcCaller): Promise<string | undefined> {
    if (!this.#mirror) return undefined;
    const k = this.#keys;
    const [cursor, state, fence] = (await this.call(() =>
      this.redis.multi().exists(k.cursor).hget(k.resyncInfo, 'state').get(k.fence).exec(),
    )) as Array<[Error | null, unknown]>;
    if (cursor?.[1] === 0) return 'no-cursor';
    if (state?.[1] === 'running' || state?.[1] === 'incomplete') return 'resync';
    if (caller.token !== '' && fence?.[1] !== caller.token) return 'fenced';
    return undefined;
  }

  /** When the last full resync of this mirror finished (ms), if one did. */
  async lastResyncAt(): Promise<number | undefined> {
    const finished = await this.call(() => this.redis.hget(this.#keys.resyncInfo, 'finished'));
    return finished === null ? undefined : Number(finished);
  }

  async claim(options: ClaimOptions & GcCaller): Promise<ClaimBatch> {
    const k = this.#keys;
    const args = [
      Math.floor(options.cutoff),
      options.offset,
      options.limit,
      options.dryRun ? '1' : '0',
      this.#mirror ? '1' : '0',
      options.token,
      ...options.mirrors,
    ];
    const keys = [
      ...[k.unreferenced, k.unreferencedBy, k.refs, k.gcClaims, k.acks, k.gcHolds, k.cursor, k.resyncInfo, k.fence],
      ...options.mirrors.map((region) => mirrorAckKey(k, region)),
    ];
    const reply = (await this.call(() => runScript(this.redis, 'gcClaim', keys, args))) as unknown[];
    refused(reply);
    const [claimable, held, read, , kept] = reply as [string[], string[], number, string, number];
    const pairs: ClaimBatch['held'] = [];
    for (let i = 0; i + 1 < held.length; i += 2) pairs.push({ chunk: held[i] as string, mirrors: (held[i + 1] as string).split(',') });
    return { claimable, held: pairs, read: Number(read), kept: Number(kept) };
  }

  /** Claim the orphans among these ids (objects no record here knows, no put holds). */
  async claimOrphans(ids: readonly string[], caller: GcCaller): Promise<string[]> {
    if (ids.length === 0) return [];
    const k = this.#keys;
    const keys = [k.refs, k.unreferenced, k.gcClaims, k.present, k.gcHolds, k.cursor, k.resyncInfo, k.fence];
    const reply = (await this.call(() =>
      runScript(this.redis, 'gcOrphans', keys, [this.#mirror ? '1' : '0', caller.token, ...ids]),
    )) as unknown[];
    refused(reply);
    return reply as string[];
  }

  /** End the claims of chunks whose objects are deleted; counts `bytes` as reclaimed. */
  async finish(ids: readonly string[], bytes: number): Promise<void> {
    if (ids.length === 0) return;
    const k = this.#keys;
    const keys = [k.gcClaims, k.gcDeleted, k.extHashes, k.gcInfo, k.present, k.missing, k.refs];
    await this.call(() => runScript(this.redis, 'gcFinish', keys, [bytes, GC_DELETED_KEEP_MS, this.#mirror ? '1' : '0', ...ids]));
  }

  /** Claims left by a pass that stopped before finishing them, page by page. */
  async *scanClaims(count = 500): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.call(() => this.redis.hscan(this.#keys.gcClaims, cursor, 'COUNT', count));
      cursor = next;
      yield flat.filter((_, i) => i % 2 === 0);
    } while (cursor !== '0');
  }

  /** Which of these ids some record here knows (referenced, unreferenced, or claimed). */
  async known(ids: readonly string[]): Promise<boolean[]> {
    if (ids.length === 0) return [];
    const k = this.#keys;
    const tx = this.redis.multi();
    for (const id of ids) tx.hexists(k.refs, id).zscore(k.unreferenced, id).hexists(k.gcClaims, id);
    const replies = (await this.call(() => tx.exec())) ?? [];
    return ids.map((_, i) => replies.slice(i * 3, i * 3 + 3).some(([, v]) => v !== null && v !== 0));
  }

  /** Take the region's collection lock (one pass at a time); false when another pass holds it. */
  async lock(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.call(() => this.redis.set(this.#keys.gcLock, owner, 'PX', ttlMs, 'NX'))) === 'OK';
  }

  /** Keep the collection lock `ttlMs` longer (a live pass renews it every step). */
  async renewLock(ttlMs: number): Promise<void> {
    await this.call(() => this.redis.pexpire(this.#keys.gcLock, ttlMs));
  }

  async unlock(owner: string): Promise<void> {
    const key = this.#keys.gcLock;
    if ((await this.call(() => this.redis.get(key))) === owner) await this.call(() => this.redis.del(key));
  }

  /** Add to counters (reclaimed, verified…) and set the last pass's figures. */
  async record(increments: Record<string, number>, figures: Record<string, string | number> = {}): Promise<void> {
    const tx = this.redis.multi();
    for (const [field, by] of Object.entries(increments)) if (by !== 0) tx.hincrby(this.#keys.gcInfo, field, by);
    const flat = Object.entries(figures).flatMap(([f, v]) => [f, String(v)]);
    if (flat.length > 0) tx.hset(this.#keys.gcInfo, ...flat);
    await this.call(() => tx.exec());
  }

  /** Note why the last pass was refused (status and metrics show it), or clear it (undefined). */
  async recordRefusal(reason: string | undefined, at: number): Promise<void> {
    const key = this.#keys.gcInfo;
    await this.call(() =>
      reason === undefined
        ? this.redis.hdel(key, 'refused', 'refused-at')
        : this.redis.hset(key, 'refused', reason, 'refused-at', String(at)),
    );
  }

  /** Counters and the last pass's figures (all numbers but `*-at` times and `held-*` lists). */
  async info(): Promise<Record<string, string>> {
    return this.call(() => this.redis.hgetall(this.#keys.gcInfo));
  }

  /**
   * In a mirror: the store no longer holds these chunks whole (a scrub found them bad, and their
   * objects were deleted): they leave present and enter missing, so a copy (or the reconciler)
   * brings them back. The source keeps no such sets.
   */
  async markLost(ids: readonly string[]): Promise<void> {
    if (ids.length === 0 || !this.#mirror) return;
    const k = this.#keys;
    await this.call(() =>
      this.redis
        .multi()
        .srem(k.present, ...ids)
        .sadd(k.missing, ...ids)
        .exec(),
    );
  }

  /**
   * Of these chunk ids, which `key` (a verifySeenKey) had not seen yet; all are added. The set
   * expires a day after its last use, so a run that dies leaves nothing for long.
   */
  async firstSeen(key: string, ids: readonly string[]): Promise<boolean[]> {
    if (ids.length === 0) return [];
    const replies = await this.call(async () => {
      const batch = this.redis.pipeline();
      for (const id of ids) batch.sadd(key, id);
      batch.pexpire(key, 24 * 3600 * 1000);
      return (await batch.exec()) ?? [];
    });
    return ids.map((_, i) => {
      const [err, added] = replies[i] ?? [new Error('no reply'), 0];
      if (err) throw translateRedisError(err, this.redis);
      return added === 1;
    });
  }

  async dropSeen(key: string): Promise<void> {
    await this.call(() => this.redis.del(key));
  }

  async exthash(ids: readonly string[]): Promise<Array<string | null>> {
    if (ids.length === 0) return [];
    return this.call(() => this.redis.hmget(this.#keys.extHashes, ...ids));
  }
}
