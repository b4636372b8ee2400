import { isFerryError, isNativeChunkId, type Logger, messageOf, silentLogger, UnauthorizedError } from '@ferry/core';
import type { Tier } from '@ferry/fetch';
import { type CacheMember, Membership, type RedisClient } from '@ferry/meta';
import { CacheNodeClient } from './client.js';
import { MembershipView } from './membership.js';
import { type PlacementFn, rendezvousOwners } from './placement.js';
import { NodeLoad, readWindow } from './schedule.js';

export interface CacheTierOptions {
  /** The live members; called once per chunk, so it must be cheap (MembershipView.ready). */
  members: () => readonly CacheMember[] | Promise<readonly CacheMember[]>;
  client: CacheNodeClient;
  /** Owners per chunk (`cache.replicas`). */
  replicas: number;
  placement?: PlacementFn;
  /** Tier name in the reader's statistics (default `cache`). */
  name?: string;
  /** How many nodes there are now, without waiting (default: as many as the last `get` saw). */
  memberCount?: () => number;
  /** Chunk requests kept in flight per node by a sequential reader (default 2). */
  perNode?: number;
  /**
   * A node that refuses the token: `read-around` (default) logs it once and reads from the next
   * tier; `fail` ends the read with the node's UnauthorizedError (a CLI read without --best-effort).
   */
  onRefusedToken?: 'read-around' | 'fail';
  logger?: Logger;
}

/** Which node served a chunk lately, to report it if the copy turns out bad (bounded). */
const SERVED_MEMORY = 1024;

/**
 * The reader tier of a region's cache nodes. A chunk is asked of its owners in placement order,
 * with its size (and, for an external chunk, its file's path, so the owner can read it from the
 * origin object), so an owner that lacks it reads it through and keeps it for the next reader. Owners that cannot be reached are skipped (and remembered as down by the
 * client); when no owner answers, or the first one that answers says the region does not have the
 * chunk, `get` returns undefined and the reader falls through to the stores itself.
 */
export function cacheTier(options: CacheTierOptions): Tier {
  const placement = options.placement ?? rendezvousOwners;
  const log = options.logger ?? silentLogger;
  const perNode = Math.max(1, options.perNode ?? 2);
  let warnedAuth = false;
  const failOnRefusal = options.onRefusedToken === 'fail';
  let memberCount = 0;
  /** Requests in flight per node: a chunk goes to the least busy of its owners. */
  const load = new NodeLoad();
  const served = new Map<string, CacheMember>();
  return {
    name: options.name ?? 'cache',
    parallelism: () => readWindow(options.memberCount?.() ?? memberCount, perNode),
    isFatal: (err) => failOnRefusal && err instanceof UnauthorizedError,
    reportBad(ref) {
      const node = served.get(ref.id);
      if (!node) return;
      served.delete(ref.id);
      options.client.reportBad(node, ref.id).then(
        (state) => log.warn({ chunk: ref.id, node: node.id, state }, 'reported a bad chunk copy to the cache node that served it'),
        (err) => log.debug({ chunk: ref.id, node: node.id, reason: messageOf(err) }, 'could not report a bad chunk copy'),
      );
    },
    async get(ref, context) {
      const members = await options.members();
      memberCount = members.length;
      if (members.length === 0) return undefined;
      // An external chunk names its file: the node finds the origin in the region's own metadata.
      const path = context && !isNativeChunkId(ref.id) ? context.entry.path : undefined;
      for (const owner of load.order(placement(members, ref.id, options.replicas))) {
        if (options.client.isDown(owner)) continue;
        load.start(owner.id);
        try {
          // 404 after a read-through attempt: another owner would find the same stores empty.
          const bytes = await options.client.get(owner, ref.id, { size: ref.size, ...(path !== undefined ? { path } : {}) });
          if (bytes) {
            served.delete(ref.id);
            served.set(ref.id, owner);
            if (served.size > SERVED_MEMORY) served.delete(served.keys().next().value as string);
          }
          return bytes;
        } catch (err) {
          if (err instanceof UnauthorizedError) {
            if (failOnRefusal) throw err;
            if (!warnedAuth) log.warn({ err, node: owner.id }, 'cache node refused the token; reading around the cache');
            warnedAuth = true;
            return undefined;
          }
          // Anything else (unreachable, a failed read-through) is worth one try at the next owner.
          log.debug(
            { chunk: ref.id, node: owner.id, reason: messageOf(err), code: isFerryError(err) ? err.code : undefined },
            'cache owner failed',
          );
        } finally {
          load.end(owner.id);
        }
      }
      return undefined;
    },
  };
}

export interface RegionCacheTierOptions {
  /** The region's Redis (membership). Not owned. */
  redis: RedisClient;
  volume: string;
  token: string;
  replicas: number;
  connectTimeoutMs: number;
  /** CA certificates (PEM) trusted for https:// nodes besides the system store. */
  ca?: string | Buffer;
  /** How often the membership is re-read (default 1 s). */
  refreshMs?: number;
  /** Heartbeat age after which a node no longer counts (default 5 s). */
  staleMs?: number;
  /** What a refused token does (see CacheTierOptions). */
  onRefusedToken?: 'read-around' | 'fail';
  /** The region's name, for the config keys errors name. */
  region?: string;
  logger?: Logger;
}

export interface RegionCacheTier {
  tier: Tier;
  client: CacheNodeClient;
  view: MembershipView;
  close(): Promise<void>;
}

/**
 * Everything a reader needs to use a region's cache nodes, from the region config:
 * `regionCacheTier({ redis, volume, token: cache.token, replicas: cache.replicas, connectTimeoutMs: cache.connectTimeoutMs })`,
 * then `new RegionReader({ …, cache: tier })`. `close()` stops the membership refresh and closes
 * the node connections.
 */
export function regionCacheTier(options: RegionCacheTierOptions): RegionCacheTier {
  const logger = options.logger ?? silentLogger;
  const membership = new Membership({
    redis: options.redis,
    volume: options.volume,
    ...(options.staleMs ? { staleMs: options.staleMs } : {}),
  });
  const view = new MembershipView({ membership, ...(options.refreshMs ? { refreshMs: options.refreshMs } : {}), logger });
  const client = new CacheNodeClient({
    token: options.token,
    connectTimeoutMs: options.connectTimeoutMs,
    ...(options.ca ? { ca: options.ca } : {}),
    ...(options.region ? { region: options.region } : {}),
    logger,
  });
  const tier = cacheTier({
    members: () => view.ready(),
    memberCount: () => view.current.length,
    client,
    replicas: options.replicas,
    ...(options.onRefusedToken ? { onRefusedToken: options.onRefusedToken } : {}),
    logger,
  });
  return {
    tier,
    client,
    view,
    async close() {
      view.stop();
      await client.close();
    },
  };
}
