import { randomBytes, randomInt } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkDigest, chunkKey, isChunkId } from '@ferry/core';
import { collectGarbage } from '@ferry/region';
import type { ObjectStore } from '@ferry/stores';
import { describe, expect, it } from 'vitest';
import { fileDigest, KiB, objectDigest, putLocal, type RegionHandle, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * Writers against garbage collection: 8 clients put and delete the same few files in a loop
 * while the daemons of the source and of a mirror collect every 100 ms with grace 0 (their own
 * schedule, `gc.every`). The files are made of a few shared 16 KiB blocks, so chunks are dropped
 * and referenced again all the time. Runs about 20 s (the task asks for a minute under load;
 * npm test keeps it shorter; RACE_SECONDS=60 runs the full minute).
 */

const RACE_MS = Number(process.env.RACE_SECONDS ?? 20) * 1000;
const PATHS = ['/race/a.bin', '/race/b.bin', '/race/c.bin'];

const scope = useRegions();

/** Object keys under chunks/ in a store. */
async function storedChunks(store: ObjectStore): Promise<string[]> {
  const ids: string[] = [];
  for await (const page of store.list('chunks/')) {
    for (const item of page.items) {
      const name = item.key.slice(item.key.lastIndexOf('/') + 1);
      ids.push(isChunkId(name) ? name : item.key);
    }
  }
  return ids;
}

/** Every file reads back as its recorded whole-file sha256; every referenced chunk is whole. */
async function checkRegion(region: RegionHandle): Promise<void> {
  const entries = await region.meta.filesUnder('/race');
  for (const entry of entries) expect(await fileDigest(region, entry.path), `${region.name} ${entry.path}`).toBe(entry.sha256);
  const refs = Object.keys(await region.redis.hgetall(region.meta.keys.refs));
  // Once collected again: the store holds exactly what the region references, each chunk whole.
  expect((await storedChunks(region.store)).sort(), `${region.name} store`).toEqual(refs.sort());
  for (const id of refs) {
    if (isChunkId(id)) expect(await objectDigest(region.store, chunkKey(id)), `${region.name} ${id}`).toBe(chunkDigest(id));
  }
}

describe('gc racing writers', () => {
  it(`8 clients put and delete the same files while both regions collect with grace 0; afterwards every file reads back the same in the source and the mirror, and no store holds an object nobody needs (about ${RACE_MS / 1000} s)`, async () => {
    const gc = { every: 100, grace: 0 };
    // Short holds: the puts' chunks are held only while a put is running (and 1 s after).
    const regions = await scope.regions({ chunkSize: 16 * KiB, source: { gc }, mirrors: { eu: { gc } }, writer: { holdTtl: '1s' } });
    const r = regions;
    const daemons = [await scope.replicator(r, {}, 'src'), await scope.replicator(r, {}, 'eu')];
    const blocks = Array.from({ length: 6 }, () => randomBytes(16 * KiB));
    const variants: string[] = [];
    // Many variants, each with a tail chunk of its own: a running put holds its chunks, so GC
    // only gets the tails of variants no put has used for a while (the shared blocks stay held).
    for (let i = 0; i < 40; i++) {
      const local = join(r.dir, `variant-${i}.bin`);
      const parts = Array.from({ length: 2 + randomInt(4) }, () => blocks[randomInt(blocks.length)] as Buffer);
      parts.push(randomBytes(5 * KiB));
      await writeFile(local, Buffer.concat(parts));
      variants.push(local);
    }
    const deadline = Date.now() + RACE_MS;
    let puts = 0;
    let deletes = 0;
    let fresh = 0;
    const client = async () => {
      while (Date.now() < deadline) {
        const path = PATHS[randomInt(PATHS.length)] as string;
        if (randomInt(4) === 0) {
          await r.source.meta.delete(path).catch((err: { code?: string }) => {
            if (err.code !== 'NOT_FOUND') throw err;
          });
          deletes += 1;
        } else {
          let local = variants[randomInt(variants.length)] as string;
          if (randomInt(2) === 0) {
            // Half the puts end in a chunk no other put has: once overwritten or deleted and no
            // longer held, only garbage collection removes it.
            const own = join(r.dir, `fresh-${fresh++}.bin`);
            await writeFile(own, Buffer.concat([await readFile(local), randomBytes(3 * KiB)]));
            local = own;
          }
          await putLocal(r, local, path);
          puts += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, client));
    expect(puts).toBeGreaterThan(50);
    expect(deletes).toBeGreaterThan(10);

    // The daemons' own schedule collected during the race, in both regions.
    for (const region of [r.source, r.mirror('eu')]) {
      expect(Number(await region.redis.hget(region.meta.keys.gcInfo, 'reclaimed-chunks')), region.name).toBeGreaterThan(0);
    }
    await waitForConvergence(r, 'eu', 60_000);
    // The daemons stop; one more pass per region, the mirror first (the source waits for its ack).
    await Promise.all(daemons.map((d) => d.stop()));
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the last puts' holds expire
    await collectGarbage(r.mirror('eu'), { graceMs: 0 });
    await collectGarbage(r.source, { graceMs: 0 });
    await checkRegion(r.source);
    await checkRegion(r.mirror('eu'));
    for (const path of PATHS) {
      const entry = await r.source.meta.tryStat(path);
      if (entry) expect(await fileDigest(r.mirror('eu'), path)).toBe(entry.sha256);
    }
  }, 180_000);
});
