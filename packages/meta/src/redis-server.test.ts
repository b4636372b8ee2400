import { describe, expect, it } from 'vitest';
import { judgeRedisServer, parseRedisInfo } from './redis-server.js';

const info = (fields: Record<string, string>) =>
  parseRedisInfo(
    `# Server\r\nredis_version:${fields.version ?? '7.0.15'}\r\nredis_mode:standalone\r\n\r\n# Memory\r\nmaxmemory_policy:${fields.policy ?? 'noeviction'}\r\n# Persistence\r\naof_enabled:${fields.aof ?? '1'}\r\n`,
  );

describe('judgeRedisServer', () => {
  it('accepts Redis 7 with noeviction and AOF', () => {
    expect(judgeRedisServer(info({}), false, 'redis://r:6379/0')).toEqual({
      where: 'redis://r:6379/0',
      version: '7.0.15',
      maxmemoryPolicy: 'noeviction',
      aof: true,
      rdb: false,
      warnings: [],
    });
    expect(judgeRedisServer(info({ version: '7.2.4', aof: '0' }), true, 'r').warnings).toEqual([]);
  });

  it.each(['6.2.14', '5.0.7', '6.9.0'])('refuses version %s in one line naming the server', (version) => {
    expect(() => judgeRedisServer(info({ version }), true, 'cluster a:1')).toThrow(
      `Redis at cluster a:1 is version ${version}: Ferry needs Redis 7.0 or newer`,
    );
  });

  it.each(['allkeys-lru', 'volatile-lru', 'allkeys-random', 'volatile-ttl'])('refuses maxmemory-policy %s and says why', (policy) => {
    expect(() => judgeRedisServer(info({ policy }), true, 'r')).toThrow(
      new RegExp(`^Redis at r has maxmemory-policy ${policy}: Ferry needs noeviction, because an evicted key is a lost file`),
    );
  });

  it('warns when nothing is persisted, or when RDB cannot be checked and AOF is off', () => {
    expect(judgeRedisServer(info({ aof: '0' }), false, 'r').warnings).toEqual([
      "Redis at r persists nothing (no AOF, no RDB snapshots): a restart loses this region's metadata and queues",
    ]);
    expect(judgeRedisServer(info({ aof: '0' }), undefined, 'r').warnings[0]).toMatch(/refuses CONFIG GET/);
  });
});
