import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Logger, messageOf, silentLogger } from '@ferry/core';
import { type RedisClient, translateRedisError, type VolumeKeys, volumeKeys } from '@ferry/meta';

/** What a node says about itself in `ferry:{v}:nodes`. */
export interface NodeInfo {
  /** Base URL clients use, e.g. `http://10.0.0.7:7700`. */
  url: string;
  weight: number;
  /** Bytes the node may hold. */
  capacity: number;
  /** Bytes it holds now. */
  used: number;
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
    return { url: v.url.replace(/\/+$/, ''), weight: v.weight as number, capacity: v.capacity as number, used: v.used as number };
  } catch {
    return undefined;
  }
}

// `lua/` sits next to `src/` and `dist/`, so the same relative URL works from sources and build.
const LUA_DIR = new URL('../lua/', import.meta.url);
const SCRIPTS = { heartbeat: 'heartbeat.lua', members: 'members.lua', leave: 'leave.lua' } as const;
type ScriptName = keyof typeof SCRIPTS;
const installed = new WeakSet<RedisClient>();
let sources: Record<ScriptName, string> | undefined;

function run(redis: RedisClient, name: ScriptName, keys: VolumeKeys, args: Array<string | number>): Promise<unknown> {
  if (!installed.has(redis)) {
    sources ??= Object.fromEntries(Object.entries(SCRIPTS).map(([n, file]) => [n, readFileSync(new URL(file, LUA_DIR), 'utf8')])) as Record<
      ScriptName,
      string
    >;
    for (const [n, lua] of Object.entries(sources)) redis.defineCommand(`ferryCache_${n}`, { numberOfKeys: 2, lua });
    installed.add(redis);
  }
  const fn = (redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[`ferryCache_${name}`];
  return (fn as (...a: Array<string | number>) => Promise<unknown>).call(redis, keys.nodes, keys.seen, ...args);
}

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
export class Membership {
  readonly keys: VolumeKeys;
  readonly staleMs: number;
  readonly #redis: RedisClient;
  readonly #forgetMs: number;

  constructor(options: MembershipOptions) {
    this.keys = volumeKeys(options.volume);
    this.#redis = options.redis;
    this.staleMs = options.staleMs ?? 5_000;
    this.#forgetMs = options.forgetMs ?? 86_400_000;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateRedisError(err, this.#redis);
    }
  }

  /** Record that node `id` is alive and what it is; returns the heartbeat time (Redis clock). */
  async heartbeat(id: string, info: NodeInfo): Promise<number> {
    const json = JSON.stringify({ url: info.url, weight: info.weight, capacity: info.capacity, used: info.used });
    return Number(await this.#call(() => run(this.#redis, 'heartbeat', this.keys, [parseNodeId(id), json, this.#forgetMs])));
  }

  async leave(id: string): Promise<void> {
    await this.#call(() => run(this.#redis, 'leave', this.keys, [parseNodeId(id)]));
  }

  /** Nodes seen within `staleMs`, sorted by id. Malformed descriptions are skipped. */
  async members(): Promise<CacheMember[]> {
    const reply = (await this.#call(() => run(this.#redis, 'members', this.keys, [this.staleMs]))) as string[];
    const members: CacheMember[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      const id = reply[i] as string;
      const info = parseNodeInfo(reply[i + 2] as string);
      if (info && NODE_ID_PATTERN.test(id)) members.push({ id, ...info, seenMs: Number(reply[i + 1]) });
    }
    return members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

export interface HeartbeatOptions {
  membership: Membership;
  id: string;
  /** Called before every beat: `used` changes all the time. */
  info: () => NodeInfo;
  /** Default 1 s; keep it well under the membership's staleMs. */
  intervalMs?: number;
  logger?: Logger;
}

/**
 * The node side: a beat every `intervalMs`, a clean leave on `stop()`. A failed beat is logged
 * once (not every second) and retried at the next tick; the node keeps serving meanwhile.
 */
export class Heartbeat {
  readonly #o: HeartbeatOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #failing = false;

  constructor(options: HeartbeatOptions) {
    this.#o = { ...options, id: parseNodeId(options.id) };
    this.#log = options.logger ?? silentLogger;
  }

  /** First beat now (its failure is thrown: a node that cannot register should say so), then the loop. */
  async start(): Promise<void> {
    await this.#o.membership.heartbeat(this.#o.id, this.#o.info());
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#beat().finally(() => {
        this.#running = undefined;
        this.#schedule();
      });
    }, this.#o.intervalMs ?? 1_000);
  }

  async #beat(): Promise<void> {
    try {
      await this.#o.membership.heartbeat(this.#o.id, this.#o.info());
      if (this.#failing) this.#log.info({ node: this.#o.id }, 'heartbeat recovered');
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#log.warn({ err, node: this.#o.id, reason: messageOf(err) }, 'heartbeat failed; retrying every interval');
      this.#failing = true;
    }
  }

  /** Stop beating and leave the membership, so clients stop asking this node right away. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    try {
      await this.#o.membership.leave(this.#o.id);
    } catch (err) {
      this.#log.warn({ err, node: this.#o.id }, 'could not leave the membership; the node will go stale instead');
    }
  }
}

/**
 * The client side: the live members, refreshed in the background every `refreshMs`, so asking
 * for the owners of a chunk never waits on Redis. A failed refresh keeps the last view (clients
 * remember dead nodes themselves, see CacheNodeClient).
 */
export class MembershipView {
  readonly #membership: Membership;
  readonly #refreshMs: number;
  readonly #log: Logger;
  #members: readonly CacheMember[] = [];
  #first: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: { membership: Membership; refreshMs?: number; logger?: Logger }) {
    this.#membership = options.membership;
    this.#refreshMs = options.refreshMs ?? 1_000;
    this.#log = options.logger ?? silentLogger;
  }

  /** The members as of the last refresh (empty before the first one). */
  get current(): readonly CacheMember[] {
    return this.#members;
  }

  /** The members, waiting for the first refresh if it has not happened yet; starts the loop. */
  async ready(): Promise<readonly CacheMember[]> {
    this.#first ??= this.refresh().then(() => this.#schedule());
    await this.#first;
    return this.#members;
  }

  async refresh(): Promise<void> {
    try {
      this.#members = await this.#membership.members();
    } catch (err) {
      this.#log.warn({ err, reason: messageOf(err) }, 'cannot refresh the cache membership; keeping the last view');
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.refresh().finally(() => this.#schedule()), this.#refreshMs);
    // A reader in a CLI process must be able to exit while the view is still refreshing.
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
