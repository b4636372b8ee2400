import type { Replicator } from '@ferry/replicator';
import { afterEach } from 'vitest';
import { createRegions, type Daemon, type Regions, startDaemon } from './regions.js';
import { startReplicator } from './replicators.js';
import { type PrivateRedis, privateRedis } from './servers/private-redis.js';

/** What a test made that must go when it ends. */
type Cleanup = () => unknown;

export interface TestScope {
  /** Regions for this test (closed when it ends, after everything started on them is stopped). */
  regions(options?: Parameters<typeof createRegions>[0]): Promise<Regions>;
  /** An in-process replicator of `region` (default `eu`), stopped when the test ends unless the test stopped it. */
  replicator(regions: Regions, options?: Parameters<typeof startReplicator>[2], region?: string): Promise<Replicator>;
  /** A replicator process of `region`: resumed (SIGCONT) and SIGKILLed when the test ends if it still runs. */
  daemon(regions: Regions, region: string, options?: Parameters<typeof startDaemon>[2]): Daemon;
  /** A redis-server of this test's own, shut down when it ends. */
  redis(options?: Parameters<typeof privateRedis>[0]): Promise<PrivateRedis>;
  /** Regions whose source and mirrors all keep their metadata in a redis-server of this test's own. */
  regionsOnOwnRedis(options?: Parameters<typeof createRegions>[0]): Promise<{ redis: PrivateRedis; regions: Regions }>;
  /** Anything else to undo when the test ends (undone in reverse order, before the regions close). */
  defer(cleanup: Cleanup): void;
}

/**
 * The set-up every integration test file shares: call it once at the top of a file (or a
 * describe), make regions, replicators, daemons and servers through it, and they are stopped and
 * closed after each test in reverse order of creation — replicators before their regions — even
 * when the test failed half-way.
 */
export function useRegions(): TestScope {
  let cleanups: Cleanup[] = [];
  afterEach(async () => {
    const undo = cleanups.reverse();
    cleanups = [];
    const failures: unknown[] = [];
    for (const fn of undo) {
      try {
        await fn();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  });
  const defer = (cleanup: Cleanup) => {
    cleanups.push(cleanup);
  };
  return {
    async regions(options) {
      const regions = await createRegions(options);
      defer(() => regions.close());
      return regions;
    },
    async replicator(regions, options = {}, region = 'eu') {
      const replicator = await startReplicator(regions, region, options);
      defer(() => replicator.stop());
      return replicator;
    },
    daemon(regions, region, options = {}) {
      const daemon = startDaemon(regions, region, options);
      defer(async () => {
        if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
        daemon.child.kill('SIGCONT');
        await daemon.kill9();
      });
      return daemon;
    },
    async redis(options) {
      const redis = await privateRedis(options);
      defer(() => redis.close());
      return redis;
    },
    async regionsOnOwnRedis(options = {}) {
      const redis = await privateRedis();
      defer(() => redis.close());
      const regions = await createRegions({ ...options, sourceRedis: redis.url, mirrorRedis: redis.url });
      defer(() => regions.close());
      return { redis, regions };
    },
    defer,
  };
}
