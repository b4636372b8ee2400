import { isFerryError, isNativeChunkId, type Logger, messageOf, silentLogger, UnauthorizedError } from '@ferry/core';
import type { Tier } from '@ferry/fetch';
import type { RedisClient } from '@ferry/meta';
import { CacheNodeClient } from './client.js';
import { type CacheMember, Membership, MembershipView } from './membership.js';
import { type PlacementFn, rendezvousOwners } from './placement.js';

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
  let memberCount = 0;
  /** Requests in flight per node: a chunk goes to the least busy of its owners. */
  const busy = new Map<string, number>();
  const served = new Map<string, CacheMember>();
  const byLoad = (owners: CacheMember[]) =>
    // Stable: among owners as busy as each other, placement order (the best owner) wins.
    owners.map((owner, rank) => ({ owner, rank, load: busy.get(owner.id) ?? 0 })).sort((a, b) => a.load - b.load || a.rank - b.rank);
  return {
    name: options.name ?? 'cache',
    parallelism: () => (options.memberCount?.() ?? memberCount) * perNode,
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
      for (const { owner } of byLoad(placement(members, ref.id, options.replicas))) {
        if (options.client.isDown(owner)) continue;
        busy.set(owner.id, (busy.get(owner.id) ?? 0) + 1);
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
            if (!warnedAuth) log.error({ err, node: owner.id }, 'cache node refused the token; reading around the cache');
            warnedAuth = true;
            return undefined;
          }
          // Anything else (unreachable, a failed read-through) is worth one try at the next owner.
          log.debug(
            { chunk: ref.id, node: owner.id, reason: messageOf(err), code: isFerryError(err) ? err.code : undefined },
            'cache owner failed',
          );
        } finally {
          busy.set(owner.id, (busy.get(owner.id) ?? 1) - 1);
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
  connectTimeoutMs?: number;
  /** CA certificates (PEM) trusted for https:// nodes besides the system store. */
  ca?: string | Buffer;
  /** How often the membership is re-read (default 1 s). */
  refreshMs?: number;
  /** Heartbeat age after which a node no longer counts (default 5 s). */
  staleMs?: number;
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
    ...(options.connectTimeoutMs ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.ca ? { ca: options.ca } : {}),
    logger,
  });
  const tier = cacheTier({
    members: () => view.ready(),
    memberCount: () => view.current.length,
    client,
    replicas: options.replicas,
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
