import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '@ferry/core';
import { ackKey, parseRegion, queuePrefix, volumeKeys } from './keys.js';

/*
 * The Redis users of a region, one per role, with rules made from the key schema in keys.ts, so
 * they cannot drift from the keys the code uses. Redis checks every command a Lua script runs
 * against the calling user's rules too, so a user allowed EVALSHA still writes only its keys.
 */

/**
 * - `writer`: put, rm, mv, import, gc and verify --repair at the source: the whole volume.
 * - `replicator`: a region's daemon (watcher, copies, warm rules, GC, scrub): the whole volume
 *   in its own Redis.
 * - `reader`: get, cat, ls, stat, the mount, the gateway: reads, and the region's backfill list.
 * - `cache-node`: reads, and the membership keys (its heartbeat).
 * - `mirror`: a mirror's replicator on the source's Redis: reads, and that mirror's own ack.
 */
export type RedisRole = 'writer' | 'replicator' | 'reader' | 'cache-node' | 'mirror';

export interface RedisAclUser {
  /** `ferry-<region>-<role>`; a mirror's user on the source is `ferry-<source>-mirror-<mirror>`. */
  name: string;
  role: RedisRole;
  /** For `mirror`: the mirror region this user is for. */
  mirror?: string;
  /** One line: who connects as this user. */
  who: string;
  /** ACL rules after `reset on <password>`: key patterns, channels, commands. */
  rules: string[];
}

/** What every connection of every role sends: the handshake, INFO (ready check, version), TIME, Cluster slot maps. */
const CONNECTION = [
  '+ping',
  '+echo',
  '+select',
  '+hello',
  '+auth',
  '+quit',
  '+reset',
  '+client|setname',
  '+client|getname',
  '+client|id',
  '+client|info',
  '+acl|whoami',
  '+info',
  '+role',
  '+time',
  '+readonly',
  '+asking',
  '+cluster|slots',
  '+cluster|shards',
  '+cluster|nodes',
  '+cluster|info',
];

/**
 * Read commands (not KEYS, SORT and the rest of @dangerous), read-only scripts, and transactions
 * (reads made in one step, like the history check; a write queued in one is refused all the same).
 */
const READ = ['+@read', '-@dangerous', '+evalsha_ro', '+eval_ro', '+multi', '+exec', '+discard'];

/** An owner of the volume's keys: everything but administration and what could hurt other tenants of the server. */
const OWNER = [
  '+@all',
  '-@dangerous',
  '-@admin',
  '-script|flush',
  '-script|kill',
  '-function',
  '-fcall',
  '-fcall_ro',
  '+wait',
  '+info',
  '+role',
];

function userName(region: string, role: RedisRole, mirror?: string): string {
  return `ferry-${region}-${role}${mirror ? `-${mirror}` : ''}`;
}

/**
 * The users of `region` (its Redis): writer (source only), replicator, reader, cache node, and in
 * the source one `mirror` user per mirror region, which that mirror's replicator uses on the
 * source's Redis.
 */
export function redisAclUsers(options: { volume: string; region: string; source: boolean; mirrors: readonly string[] }): RedisAclUser[] {
  const region = parseRegion(options.region);
  const k = volumeKeys(options.volume);
  const volumeAll = `ferry:{${options.volume}}:*`;
  const queuesAll = `${queuePrefix(options.volume)}:*`;
  const owner = (role: RedisRole, who: string): RedisAclUser => ({
    name: userName(region, role),
    role,
    who,
    rules: ['resetkeys', `~${volumeAll}`, `~${queuesAll}`, 'resetchannels', '-@all', ...OWNER, ...CONNECTION],
  });
  const users: RedisAclUser[] = [];
  if (options.source) users.push(owner('writer', 'put, rm, mv, import, gc and verify --repair at the source'));
  users.push(owner('replicator', `the replicator of ${region} (watcher, copies, warm rules, GC, scrub)`));
  users.push({
    name: userName(region, 'reader'),
    role: 'reader',
    who: 'get, cat, ls, stat, the mount and the gateway',
    rules: [
      'resetkeys',
      `%R~${volumeAll}`,
      `~${k.backfill}`,
      'resetchannels',
      '-@all',
      ...READ,
      // The backfill request: LPUSH then LTRIM to the cap, in one transaction.
      '+lpush',
      '+ltrim',
      ...CONNECTION,
    ],
  });
  users.push({
    name: userName(region, 'cache-node'),
    role: 'cache-node',
    who: 'the cache nodes of the region (their membership and heartbeats; the hash of an imported chunk they verify first)',
    rules: [
      'resetkeys',
      `%R~${volumeAll}`,
      `~${k.nodes}`,
      `~${k.seen}`,
      // A node that fetches an imported chunk from its origin records the hash of that first
      // verified copy (HSETNX: set once, never changed), against which every later copy is checked.
      `~${k.extHashes}`,
      'resetchannels',
      '-@all',
      ...READ,
      // members-heartbeat.lua and members-leave.lua, with what they run.
      '+evalsha',
      '+eval',
      '+hset',
      '+hdel',
      '+zadd',
      '+zrem',
      '+hsetnx',
      ...CONNECTION,
    ],
  });
  if (options.source) {
    for (const mirror of options.mirrors) {
      users.push({
        name: userName(region, 'mirror', parseRegion(mirror)),
        role: 'mirror',
        mirror,
        who: `the replicator of mirror ${mirror}, on the source's Redis: reads the namespace and the change log, writes its ack`,
        rules: [
          'resetkeys',
          `%R~${volumeAll}`,
          `~${ackKey(options.volume, mirror)}`,
          'resetchannels',
          '-@all',
          ...READ,
          // ack.lua, with what it runs.
          '+evalsha',
          '+eval',
          '+set',
          ...CONNECTION,
        ],
      });
    }
  }
  return users;
}

export type RedisAclFormat = 'acl-file' | 'commands';

/**
 * The users as lines of an ACL file (`aclfile`, loaded with ACL LOAD) or as ACL SETUSER
 * commands (for a server without an ACL file, or a managed one). Passwords go in as SHA-256
 * hashes (`#<hex>`), never in clear.
 */
export function formatRedisAcl(users: readonly RedisAclUser[], passwords: ReadonlyMap<string, string>, format: RedisAclFormat): string {
  const lines = users.map((user) => {
    const password = passwords.get(user.name);
    if (!password) throw new InvalidArgumentError(`no password for Redis user ${user.name}`);
    const rules = ['on', `#${createHash('sha256').update(password).digest('hex')}`, ...user.rules].join(' ');
    return format === 'acl-file' ? `user ${user.name} reset ${rules}` : `ACL SETUSER ${user.name} reset ${rules}`;
  });
  return `${lines.join('\n')}\n`;
}
