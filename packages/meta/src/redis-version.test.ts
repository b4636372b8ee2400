import { describe, expect, it } from 'vitest';
import { checkRedisVersion, redisVersionOf, requireRedisVersion } from './redis-version.js';

const info = (version: string) => `# Server\r\nredis_version:${version}\r\nredis_git_sha1:00000000\r\nrun_id:abc\r\n`;

describe('the Redis version', () => {
  it('is read from INFO server', () => {
    expect(redisVersionOf(info('7.0.15'))).toBe('7.0.15');
    expect(redisVersionOf('# Server\r\nrun_id:abc\r\n')).toBeUndefined();
  });

  it('must be 7.0 or newer, said in one line', async () => {
    expect(() => checkRedisVersion('7.0.0', 'redis://r:6379/0')).not.toThrow();
    expect(() => checkRedisVersion('7.2.4', 'redis://r:6379/0')).not.toThrow();
    expect(() => checkRedisVersion('6.2.14', 'redis://r:6379/0')).toThrow(
      'Redis at redis://r:6379/0 is version 6.2.14; Ferry needs Redis 7.0 or newer (stream entries-added, SMISMEMBER)',
    );
    expect(() => checkRedisVersion(undefined, 'redis://r:6379/0')).toThrow('did not say its version');
    await expect(requireRedisVersion({ info: async () => info('5.0.7') } as never, 'redis://old:6379/1')).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      message: expect.stringMatching(/^Redis at redis:\/\/old:6379\/1 is version 5\.0\.7; Ferry needs Redis 7\.0 or newer/),
    });
    expect(await requireRedisVersion({ info: async () => info('7.0.15') } as never, 'redis://new:6379/1')).toBe('7.0.15');
  });
});
