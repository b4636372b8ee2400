import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkDigest, chunkKey } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { fileDigest, KiB, objectDigest, putBytes, type Regions, runCli, waitFor, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * `ferry verify` against real stores: a source and a mirror (in-process daemon, real Redis,
 * file:// stores); bit rot and a lost object are made by hand in the store's files, and
 * `ferry verify` runs as a process.
 */

const scope = useRegions();

interface VerifyJson {
  chunks: number;
  repaired: number;
  bad: Array<{ chunk: string; problem: string; files: string[]; repaired: boolean }>;
}

async function verify(r: Regions, args: string[]): Promise<{ code: number; json: VerifyJson; stderr: string }> {
  const result = await runCli(['verify', ...args, '--json', '--config', r.configPath]);
  return { code: result.code ?? -1, json: JSON.parse(result.stdout.trim().split('\n').at(-1) as string), stderr: result.stderr };
}

async function flipByte(path: string): Promise<void> {
  const bytes = await readFile(path);
  bytes[17] = (bytes[17] ?? 0) ^ 0x40;
  await writeFile(path, bytes);
}

describe('ferry verify', () => {
  it('finds a flipped byte and a deleted object in a mirror store and names them, --repair copies both again, and a second verify passes', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: {} } });
    const r = regions;
    const daemon = await scope.replicator(r, {}, 'eu');
    const bBytes = randomBytes(100 * KiB);
    const { entries } = await putBytes(r, { '/m/a.bin': randomBytes(200 * KiB), '/m/b.bin': bBytes });
    await waitForConvergence(r, 'eu', 30_000);
    const a = entries.find((e) => e.path === '/m/a.bin');
    const b = entries.find((e) => e.path === '/m/b.bin');
    const flipped = a?.chunks[1]?.id as string;
    const lost = b?.chunks[0]?.id as string;
    const root = r.mirror('eu').root as string;
    await flipByte(join(root, chunkKey(flipped as never)));
    await rm(join(root, chunkKey(lost as never)));

    const found = await verify(r, ['--region', 'eu']);
    expect(found.code).toBe(1);
    expect(found.stderr).toMatch(/2 chunks bad or missing/);
    const bad = Object.fromEntries(found.json.bad.map((x) => [x.chunk, x]));
    expect(Object.keys(bad).sort()).toEqual([flipped, lost].sort());
    expect(bad[flipped]).toMatchObject({ problem: 'corrupt', files: ['/m/a.bin'], repaired: false });
    expect(bad[lost]).toMatchObject({ problem: 'missing', files: ['/m/b.bin'], repaired: false });
    const human = await runCli(['verify', '/m', '--region', 'eu', '--config', r.configPath]);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain(`corrupt: ${flipped}`);
    expect(human.stdout).toContain(`missing: ${lost}`);

    const sample = await runCli(['verify', '--region', 'eu', '--sample', '50', '--json', '--config', r.configPath]);
    expect(JSON.parse(sample.stdout.trim()).chunks).toBeLessThanOrEqual(entries.flatMap((e) => e.chunks).length);
    const wrong = await runCli(['verify', '--sample', '0', '--config', r.configPath]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trim()).toBe('ferry: --sample: expected a percent in (0, 100], got "0"');

    const repaired = await verify(r, ['--region', 'eu', '--repair']);
    expect(repaired.code).toBe(0);
    expect(repaired.json.repaired).toBe(2);
    const again = await verify(r, ['--region', 'eu']);
    expect(again.code).toBe(0);
    expect(again.json.bad).toEqual([]);
    expect(again.json.chunks).toBe(entries.flatMap((e) => e.chunks).length);
    for (const path of ['/m/a.bin', '/m/b.bin']) expect(await fileDigest(r.mirror('eu'), path)).toBe(await fileDigest(r.source, path));
    // A second file with b's bytes shares its chunks: the volume's check meets each chunk once,
    // and leaves no trace of what it met in Redis.
    await putBytes(r, { '/m/b-again.bin': bBytes });
    await waitForConvergence(r, 'eu', 30_000);
    const shared = await verify(r, ['--region', 'eu']);
    expect(shared.json.chunks).toBe(entries.flatMap((e) => e.chunks).length);
    expect(await r.mirror('eu').redis.keys('*verify-seen*')).toEqual([]);

    const status = await runCli(['status', '--region', 'eu', '--json', '--config', r.configPath]);
    // Counted per check, ever: three verifies found the same two chunks bad (the sampled one perhaps some), one repaired them.
    const gc = JSON.parse(status.stdout.trim()).gc;
    const counted = gc.totals;
    expect(counted.repaired).toBe(2);
    expect(counted.bad).toBeGreaterThanOrEqual(6);
    // The state now comes first: the last check (of the whole volume) found nothing bad left.
    expect(gc.lastCheck).toMatchObject({ path: '/', bad: 0 });
    const metrics = await daemon.metrics.registry.metrics();
    expect(metrics).toContain(`ferry_scrub_chunks_bad{region="eu"} ${counted.bad}`);
    expect(metrics).toContain('ferry_scrub_chunks_repaired{region="eu"} 2');
  }, 120_000);

  it("the daemon's background scrub finds a flipped byte in the mirror store and copies the chunk again", async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: { scrub: { bytesPerSecond: '10MiB' } } } });
    const r = regions;
    await scope.replicator(r, { scrubPauseMs: 200 }, 'eu');
    const { entries } = await putBytes(r, { '/b/a.bin': randomBytes(150 * KiB) });
    await waitForConvergence(r, 'eu', 30_000);
    const id = entries[0]?.chunks[1]?.id as string;
    await flipByte(join(r.mirror('eu').root as string, chunkKey(id as never)));
    const eu = r.mirror('eu');
    await waitFor(async () => Number(await eu.redis.hget(eu.meta.keys.gcInfo, 'repaired-chunks')) >= 1, 30_000, 'the scrub to repair');
    expect(await objectDigest(eu.store, chunkKey(id as never))).toBe(chunkDigest(id as never));
    expect(await fileDigest(eu, '/b/a.bin')).toBe(await fileDigest(r.source, '/b/a.bin'));
  }, 120_000);

  it('in the source, repairs a flipped byte from a mirror that holds a good copy', async () => {
    const regions = await scope.regions({ chunkSize: 64 * KiB, mirrors: { eu: {} } });
    const r = regions;
    await scope.replicator(r, {}, 'eu');
    const { entries } = await putBytes(r, { '/s/a.bin': randomBytes(150 * KiB) });
    await waitForConvergence(r, 'eu', 30_000);
    const digest = await fileDigest(r.source, '/s/a.bin');
    const id = entries[0]?.chunks[2]?.id as string;
    await flipByte(join(r.source.root as string, chunkKey(id as never)));

    const found = await verify(r, ['/s']);
    expect(found.code).toBe(1);
    expect(found.json.bad.map((x) => x.chunk)).toEqual([id]);
    const repaired = await verify(r, ['/s', '--repair']);
    expect(repaired.code).toBe(0);
    expect(repaired.json.repaired).toBe(1);
    expect((await verify(r, ['/s'])).code).toBe(0);
    expect(await fileDigest(r.source, '/s/a.bin')).toBe(digest);
  }, 120_000);
});
