import { InvalidArgumentError } from '@ferry/core';
import { type VolumeKeys, volumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { RedisPart } from './redis-part.js';
import { runScript } from './scripts.js';

/** What a node says about itself in `ferry:{v}:nodes`. */
export interface NodeInfo {
  /** Base URL clients use, e.g. `http://10.0.0.7:7700`. */
  url: string;
  weight: number;
  /** Bytes the node may hold. */
  capacity: number;
  /** Bytes it holds now. */
  used: number;
  /** Chunk reads served from its disk and reads of chunks it did not hold, since it started (for a hit ratio). */
  hits?: number;
  misses?: number;
}

export interface CacheMember extends NodeInfo {
  id: string;
  /** Last heartbeat, ms on Redis's clock. */
  seenMs: number;
}

/** Node ids end up in hashes (placement), Redis keys and logs: keep them plain. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function parseNodeId(value: unknown): string {
  if (typeof value === 'string' && NODE_ID_PATTERN.test(value)) return value;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  throw new InvalidArgumentError(`invalid cache node id ${shown}: expected 1-128 letters, digits, ".", "_", ":" or "-"`);
}

/** A node description read back from Redis, or undefined when anything in it is off. */
export function parseNodeInfo(json: string): NodeInfo | undefined {
  try {
    const v = JSON.parse(json) as Partial<NodeInfo>;
    const count = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n >= 0;
    if (typeof v.url !== 'string' || !/^https?:\/\/\S+$/.test(v.url)) return undefined;
    if (!count(v.weight) || (v.weight as number) <= 0 || !count(v.capacity) || !count(v.used)) return undefined;
    return {
      url: v.url.replace(/\/+$/, ''),
      weight: v.weight as number,
      capacity: v.capacity as number,
      used: v.used as number,
      ...(count(v.hits) && count(v.misses) ? { hits: v.hits as number, misses: v.misses as number } : {}),
    };
  } catch {
    return undefined;
  }
}

/** A node without a heartbeat for this long no longer counts (several beats missed). */
const STALE_MS = 5_000;
/** A node silent for this long is removed from Redis altogether. */
const FORGET_MS = 86_400_000;

export interface MembershipOptions {
  /** The region's Redis. Not owned. */
  redis: RedisClient;
  volume: string;
  /** A node without a heartbeat for this long drops out of `members()` (default 5 s). */
  staleMs?: number;
  /** A node silent for this long is removed from Redis altogether (default 1 day). */
  forgetMs?: number;
}

/** The cache nodes of one volume in one region, as recorded in the region's Redis. */
export class Membership extends RedisPart {
  readonly keys: VolumeKeys;
  readonly staleMs: number;
  readonly #forgetMs: number;

  constructor(options: MembershipOptions) {
    super(options.redis);
    this.keys = volumeKeys(options.volume);
    this.staleMs = options.staleMs ?? STALE_MS;
    this.#forgetMs = options.forgetMs ?? FORGET_MS;
  }

  #run(name: 'membersHeartbeat' | 'membersLeave' | 'membersLive', args: Array<string | number>): Promise<unknown> {
    return this.call(() => runScript(this.redis, name, [this.keys.nodes, this.keys.seen], args));
  }

  /** Record that node `id` is alive and what it is; returns the heartbeat time (Redis clock). */
  async heartbeat(id: string, info: NodeInfo): Promise<number> {
    const { url, weight, capacity, used, hits, misses } = info;
    const json = JSON.stringify({ url, weight, capacity, used, ...(hits !== undefined && misses !== undefined ? { hits, misses } : {}) });
    return Number(await this.#run('membersHeartbeat', [parseNodeId(id), json, this.#forgetMs]));
  }

  async leave(id: string): Promise<void> {
    await this.#run('membersLeave', [parseNodeId(id)]);
  }

  /** Nodes seen within `staleMs`, sorted by id. Malformed descriptions are skipped. */
  async members(): Promise<CacheMember[]> {
    const reply = (await this.#run('membersLive', [this.staleMs])) as string[];
    const members: CacheMember[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      const id = reply[i] as string;
      const info = parseNodeInfo(reply[i + 2] as string);
      if (info && NODE_ID_PATTERN.test(id)) members.push({ id, ...info, seenMs: Number(reply[i + 1]) });
    }
    return members.sort(byId);
  }

  /**
   * Every node Redis still knows (silent ones too, until forgotten), sorted by id, with whether it
   * is up (seen within `staleMs`) and how long ago it was seen, ms.
   */
  async all(): Promise<Array<CacheMember & { up: boolean; silentMs: number }>> {
    const [nodes, seen, time] = await this.call(async () => {
      const replies = await this.redis.multi().hgetall(this.keys.nodes).zrange(this.keys.seen, 0, -1, 'WITHSCORES').time().exec();
      return (replies ?? []).map(([err, value]) => {
        if (err) throw err;
        return value;
      });
    });
    const [sec, usec] = time as [string, string];
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const seenMs = new Map<string, number>();
    const flat = seen as string[];
    for (let i = 0; i + 1 < flat.length; i += 2) seenMs.set(flat[i] as string, Number(flat[i + 1]));
    const all: Array<CacheMember & { up: boolean; silentMs: number }> = [];
    for (const [id, json] of Object.entries(nodes as Record<string, string>)) {
      const info = parseNodeInfo(json);
      if (!info || !NODE_ID_PATTERN.test(id)) continue;
      const at = seenMs.get(id) ?? 0;
      all.push({ id, ...info, seenMs: at, up: now - at < this.staleMs, silentMs: Math.max(0, now - at) });
    }
    return all.sort(byId);
  }
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
