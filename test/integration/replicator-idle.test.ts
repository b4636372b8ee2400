import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KiB, putBytes, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';
import { waitFor } from '../support/wait.mjs';

/*
 * An idle mirror costs nothing per file: between full walks (copy.fullReconcileEvery) a reconcile
 * pass with nothing missing and nothing failing reads two counts and never scans the entries.
 * Counted with INFO commandstats on a Redis of this test's own.
 */

const scope = useRegions();

async function scans(cli: (...args: string[]) => Promise<string>): Promise<number> {
  const stats = await cli('INFO', 'commandstats');
  return Number(/cmdstat_hscan:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

async function passes(r: Awaited<ReturnType<typeof scope.regions>>): Promise<Record<string, string>> {
  return r.mirror('eu').redis.hgetall(r.mirror('eu').meta.keys.reconcile);
}

describe('an idle mirror', () => {
  it('reconciles without walking its entries until something is missing or failing, or the full walk is due', async () => {
    const { redis, regions: r } = await scope.regionsOnOwnRedis({
      chunkSize: 64 * KiB,
      mirrors: { eu: { copy: { reconcileEvery: 200, fullReconcileEvery: '1h' } } },
    });
    await scope.replicator(r, {}, 'eu');
    const files = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`/idle/f${i}.bin`, randomBytes(2 * KiB)]));
    await putBytes(r, files);
    await waitForConvergence(r, 'eu', 30_000);
    // A light pass comes only after a full walk since the start, and once nothing is missing.
    await waitFor(async () => (await passes(r)).full === '0', 30_000, 'a light pass');
    const first = Number((await passes(r)).passes);
    const before = await scans(redis.cli);
    await waitFor(async () => Number((await passes(r)).passes) >= first + 5, 30_000, 'five more passes');
    expect((await passes(r)).full).toBe('0');
    expect(await scans(redis.cli)).toBe(before);

    // A copy failure on record makes the next pass a full one (and the failure is dropped: the chunk is present).
    const mirror = r.mirror('eu');
    const [chunk] = (await mirror.redis.smembers(mirror.meta.keys.present)) as string[];
    await mirror.redis.hset(
      mirror.meta.keys.copyFailures,
      chunk as string,
      JSON.stringify({ error: 'test', code: 'TRANSIENT', attempts: 1, at: Date.now() }),
    );
    await waitFor(
      async () => (await mirror.redis.hlen(mirror.meta.keys.copyFailures)) === 0,
      30_000,
      'the failure record to be reconciled',
    );
    expect(await scans(redis.cli)).toBeGreaterThan(before);

    // New files reach the mirror through the log and the missing set, light passes or not.
    await putBytes(r, { '/idle/new.bin': randomBytes(3 * KiB) });
    await waitForConvergence(r, 'eu', 30_000);
  }, 90_000);
});
