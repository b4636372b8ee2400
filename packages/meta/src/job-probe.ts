import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';

/**
 * Which of many BullMQ jobs exist and which of those failed, in one pipelined round trip (BullMQ
 * answers one job per call). Reads only: the queue itself is BullMQ's.
 */
export class JobProbe extends RedisPart {
  readonly #jobKey: (id: string) => string;
  readonly #failedKey: string;
  readonly #batchesKey: string | undefined;

  /** `batchesKey`: a hash of id → the id of a job that holds it with others (its own job comes first). */
  constructor(options: { redis: RedisClient; jobKey: (id: string) => string; failedKey: string; batchesKey?: string }) {
    super(options.redis);
    this.#jobKey = options.jobKey;
    this.#failedKey = options.failedKey;
    this.#batchesKey = options.batchesKey;
  }

  /** For each id: no job, a job that failed, or a job held otherwise (waiting, running, retrying). */
  async states(ids: readonly string[]): Promise<Array<'none' | 'failed' | 'held'>> {
    if (ids.length === 0) return [];
    const replies = await this.call(async () => {
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.exists(this.#jobKey(id)).zscore(this.#failedKey, id);
      return (await pipeline.exec()) ?? [];
    });
    const states = ids.map((_, i): 'none' | 'failed' | 'held' => {
      const [existsErr, exists] = replies[2 * i] ?? [];
      const [failedErr, failed] = replies[2 * i + 1] ?? [];
      if (existsErr) throw existsErr;
      if (failedErr) throw failedErr;
      if (Number(exists) === 0) return 'none';
      return failed === null || failed === undefined ? 'held' : 'failed';
    });
    return this.#batched(ids, states);
  }

  /** Ids without a job of their own are held when the batch job the hash names for them still exists. */
  async #batched(ids: readonly string[], states: Array<'none' | 'failed' | 'held'>): Promise<Array<'none' | 'failed' | 'held'>> {
    const key = this.#batchesKey;
    const open = ids.filter((_, i) => states[i] === 'none');
    if (!key || open.length === 0) return states;
    const batches = await this.call(() => this.redis.hmget(key, ...open));
    const named = [...new Set(batches.filter((b): b is string => typeof b === 'string'))];
    if (named.length === 0) return states;
    const live = await this.call(async () => {
      const pipeline = this.redis.pipeline();
      for (const id of named) pipeline.exists(this.#jobKey(id));
      return (await pipeline.exec()) ?? [];
    });
    const alive = new Set(named.filter((_, i) => Number(live[i]?.[1]) === 1));
    const holder = new Map(open.map((id, i) => [id, batches[i]]));
    return ids.map((id, i) => {
      const batch = holder.get(id);
      return states[i] === 'none' && typeof batch === 'string' && alive.has(batch) ? 'held' : (states[i] as 'none' | 'failed' | 'held');
    });
  }
}

/**
 * The hash JobProbe reads with `batchesKey`: which job holds an id it shares with other ids. A
 * producer names the ids before it adds the job, and settles them when the job has ended.
 */
export class JobBatches extends RedisPart {
  readonly #key: string;

  constructor(options: { redis: RedisClient; key: string }) {
    super(options.redis);
    this.#key = options.key;
  }

  async name(pairs: ReadonlyArray<readonly [id: string, job: string]>): Promise<void> {
    if (pairs.length > 0) await this.call(() => this.redis.hset(this.#key, ...pairs.flat()));
  }

  async settle(ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.call(() => this.redis.hdel(this.#key, ...ids));
  }

  /**
   * Drop the ids whose named job no longer exists: a process that died between a job's end and
   * its settle left them. One HSCAN page and one pipelined EXISTS per step, so the hash is never
   * read whole. An id named just before its job is added may go too; the worst that does is one
   * chunk queued a second time. Returns how many ids were dropped. Pages of 250: an HSCAN of 1,000
   * took 23–28 ms on a hash of a million-chunk mirror's batches, too near the 50 ms bound.
   */
  async sweep(jobKey: (job: string) => string, count = 250): Promise<number> {
    let cursor = '0';
    let dropped = 0;
    do {
      const [next, flat] = await this.call(() => this.redis.hscan(this.#key, cursor, 'COUNT', count));
      cursor = next;
      const pairs: Array<[string, string]> = [];
      for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i] as string, flat[i + 1] as string]);
      if (pairs.length === 0) continue;
      const jobs = [...new Set(pairs.map(([, job]) => job))];
      const exists = await this.call(async () => {
        const pipeline = this.redis.pipeline();
        for (const job of jobs) pipeline.exists(jobKey(job));
        return (await pipeline.exec()) ?? [];
      });
      const gone = new Set(jobs.filter((_, i) => Number(exists[i]?.[1]) === 0));
      const stale = pairs.filter(([, job]) => gone.has(job)).map(([id]) => id);
      if (stale.length > 0) await this.call(() => this.redis.hdel(this.#key, ...stale));
      dropped += stale.length;
    } while (cursor !== '0');
    return dropped;
  }
}
