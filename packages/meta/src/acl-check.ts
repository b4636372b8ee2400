import { AccessDeniedError, messageOf } from '@ferry/core';
import type { RedisRole } from './acl.js';
import { BACKFILL_MAX } from './chunks.js';
import { ackKey, volumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { describeRedis } from './redis.js';
import { isNoPermission, translateRedisError } from './redis-errors.js';

/** What a process found out about its Redis user at start. */
export interface RedisAccessReport {
  /** `ACL WHOAMI`, or undefined when the user may not ask. */
  user: string | undefined;
  role: RedisRole;
  /** The user may also write keys its role has no business writing (e.g. `default`). */
  broader: boolean;
  /** One line for the log. */
  summary: string;
}

/**
 * Check at start that this process's Redis user can do what `role` needs, and whether it can do
 * more. Every probe is harmless whatever the user may do: reads, an LTRIM of the backfill list to
 * the length it is kept at anyway, a GET of the mirror's own ack, and, as the write a role other
 * than the owners must not make, a DEL of a key nothing uses. (ACL DRYRUN would say the same
 * without writing, but it needs administrator rights, which no role's user has.) A missing
 * permission throws one AccessDeniedError naming it; more rights than needed is only reported.
 */
export async function checkRedisAccess(
  redis: RedisClient,
  options: { volume: string; role: RedisRole; mirror?: string },
): Promise<RedisAccessReport> {
  const { volume, role } = options;
  const k = volumeKeys(volume);
  const probeKey = `ferry:{${volume}}:acl-probe`;
  const user = await redis.call('ACL', 'WHOAMI').then(
    (name) => String(name),
    () => undefined,
  );
  const who = `Redis user ${user ?? '(unknown)'} at ${describeRedis(redis)}`;
  const needs: Array<[string, () => Promise<unknown>]> = [[`reading ${k.entries}`, () => redis.hlen(k.entries)]];
  if (role === 'writer' || role === 'replicator') needs.push([`writing keys of volume ${volume}`, () => redis.del(probeKey)]);
  if (role === 'reader') needs.push([`writing ${k.backfill}`, () => redis.ltrim(k.backfill, 0, BACKFILL_MAX - 1)]);
  if (role === 'cache-node') {
    needs.push([`writing ${k.nodes}`, () => redis.hdel(k.nodes, 'acl-probe')]);
    needs.push([`writing ${k.extHashes}`, () => redis.hdel(k.extHashes, 'acl-probe')]);
  }
  if (role === 'mirror' && options.mirror)
    needs.push([`reading ${ackKey(volume, options.mirror)}`, () => redis.get(ackKey(volume, options.mirror as string))]);
  for (const [what, probe] of needs) {
    try {
      await probe();
    } catch (err) {
      if (!isNoPermission(err)) throw translateRedisError(err, redis);
      throw new AccessDeniedError(
        `${who} cannot do what a ${role} needs: ${what} (${messageOf(err).split('\n')[0]}); \`ferry redis-acl\` prints the ${role}'s rules`,
        {
          cause: err,
        },
      );
    }
  }
  let broader = false;
  if (role !== 'writer' && role !== 'replicator') {
    broader = await redis.del(probeKey).then(
      () => true,
      (err: unknown) => {
        if (isNoPermission(err)) return false;
        throw translateRedisError(err, redis);
      },
    );
  }
  const summary = broader
    ? `${who} may write every key of volume ${volume}, more than a ${role} needs: \`ferry redis-acl\` prints a user for each role`
    : `${who} has what a ${role} needs${role === 'writer' || role === 'replicator' ? '' : ', and may not write the namespace'}`;
  return { user, role, broader, summary };
}
