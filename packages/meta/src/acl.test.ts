import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatRedisAcl, redisAclUsers } from './acl.js';
import { ackKey, volumeKeys } from './keys.js';

describe('Redis users per role', () => {
  const source = redisAclUsers({ volume: 'models', region: 'src', source: true, mirrors: ['eu', 'us'] });
  const mirror = redisAclUsers({ volume: 'models', region: 'eu', source: false, mirrors: ['eu', 'us'] });

  it('makes a writer and one user per mirror only on the source', () => {
    expect(source.map((u) => u.name)).toEqual([
      'ferry-src-writer',
      'ferry-src-replicator',
      'ferry-src-reader',
      'ferry-src-cache-node',
      'ferry-src-mirror-eu',
      'ferry-src-mirror-us',
    ]);
    expect(mirror.map((u) => u.name)).toEqual(['ferry-eu-replicator', 'ferry-eu-reader', 'ferry-eu-cache-node']);
  });

  it('takes every key pattern from the key schema: readers write the backfill list, a mirror its own ack, nodes their membership', () => {
    const k = volumeKeys('models');
    const writes = (name: string) =>
      source
        .find((u) => u.name === name)
        ?.rules.filter((r) => r.startsWith('~'))
        .map((r) => r.slice(1));
    expect(writes('ferry-src-reader')).toEqual([k.backfill]);
    expect(writes('ferry-src-mirror-eu')).toEqual([ackKey('models', 'eu')]);
    expect(writes('ferry-src-cache-node')).toEqual([k.nodes, k.seen, k.extHashes]);
    expect(writes('ferry-src-writer')).toEqual(['ferry:{models}:*', '{ferry:models}:*']);
    for (const user of source.filter((u) => u.role !== 'writer' && u.role !== 'replicator')) {
      expect(user.rules).toContain('%R~ferry:{models}:*');
      expect(user.rules).toContain('-@dangerous');
    }
  });

  it('prints ACL file lines and SETUSER commands with the password hashed, never in clear', () => {
    const passwords = new Map(source.map((u) => [u.name, `secret-of-${u.name}`]));
    const file = formatRedisAcl(source, passwords, 'acl-file');
    const commands = formatRedisAcl(source, passwords, 'commands');
    expect(file.trim().split('\n')).toHaveLength(source.length);
    expect(file).not.toContain('secret-of-');
    const hash = createHash('sha256').update('secret-of-ferry-src-reader').digest('hex');
    expect(file).toMatch(new RegExp(`^user ferry-src-reader reset on #${hash} resetkeys `, 'm'));
    expect(commands.replace(/^ACL SETUSER /gm, 'user ')).toBe(file);
    expect(() => formatRedisAcl(source, new Map(), 'acl-file')).toThrow(/no password for Redis user ferry-src-writer/);
  });
});
