import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { differences, KiB, putBytes, type Regions, regionState, verifyMirrorChunks, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * A source whose history changed under the mirror: its Redis came back empty and was written
 * again, or it was restored from an older dump. Either way the mirror notices (epoch, the record
 * at its cursor), does a full resync, and ends with exactly the source's entries, deletions
 * included.
 */

const scope = useRegions();

const paths = async (r: Regions, name: string) => Object.keys((await regionState(r.mirror(name))).entries).sort();

describe('a source whose history changed', () => {
  it('came back empty and was written again: the mirror resyncs to exactly the new entries', async () => {
    const redis = await scope.redis();
    const regions = await scope.regions({ chunkSize: 64 * KiB, sourceRedis: redis.url });
    const r = regions;
    await putBytes(r, { '/h/a.bin': randomBytes(100 * KiB), '/h/b.bin': randomBytes(70 * KiB), '/h/c.bin': randomBytes(10) });
    const replicator = await scope.replicator(r);
    await waitForConvergence(r, 'eu', 20_000);
    const epoch = (await r.mirror('eu').mirror.tracking()).epoch;
    expect(epoch).toMatch(/^[0-9a-f]{16}$/);

    // The source's Redis loses everything (a restart without persistence); then new writes.
    await redis.cli('flushall');
    await putBytes(r, { '/h/d.bin': randomBytes(80 * KiB), '/h/c.bin': randomBytes(20) });
    await waitForConvergence(r, 'eu', 30_000);
    expect(await paths(r, 'eu')).toEqual(['/h/c.bin', '/h/d.bin']);
    expect(await differences(r, 'eu')).toEqual([]);
    await verifyMirrorChunks(r, 'eu');
    const after = await r.mirror('eu').mirror.tracking();
    expect(after.epoch).not.toBe(epoch);
    expect(after.epoch).toBe(await r.source.redis.get(r.source.meta.keys.epoch));
    expect((await replicator.status()).resync?.reason).toMatch(/epoch changed/);
  });

  it('was restored from an older dump: the mirror resyncs, drops what the source no longer has, and reads on', async () => {
    const redis = await scope.redis({ rdb: true });
    const regions = await scope.regions({ chunkSize: 64 * KiB, sourceRedis: redis.url });
    const r = regions;
    await putBytes(r, { '/r/a.bin': randomBytes(100 * KiB), '/r/b.bin': randomBytes(30 * KiB) });
    const replicator = await scope.replicator(r);
    await waitForConvergence(r, 'eu', 20_000);
    await redis.snapshot('older');

    // Later writes the restore will lose: a new file, a delete, an overwrite.
    await putBytes(r, { '/r/c.bin': randomBytes(50 * KiB) });
    await r.source.meta.delete('/r/a.bin');
    await putBytes(r, { '/r/b.bin': randomBytes(40 * KiB) });
    await waitForConvergence(r, 'eu', 20_000);
    expect(await paths(r, 'eu')).toEqual(['/r/b.bin', '/r/c.bin']);

    await redis.shutdown();
    await redis.restore('older');
    await redis.start();
    await waitForConvergence(r, 'eu', 30_000);
    expect(await paths(r, 'eu')).toEqual(['/r/a.bin', '/r/b.bin']);
    expect((await r.mirror('eu').meta.stat('/r/b.bin')).size).toBe(30 * KiB);
    expect((await replicator.status()).resync?.reason).toMatch(/rolled back/);

    // The restored log goes on, and the mirror with it.
    await putBytes(r, { '/r/e.bin': randomBytes(5 * KiB) });
    await waitForConvergence(r, 'eu', 20_000);
    expect(await paths(r, 'eu')).toEqual(['/r/a.bin', '/r/b.bin', '/r/e.bin']);
    await verifyMirrorChunks(r, 'eu');
  });
});
