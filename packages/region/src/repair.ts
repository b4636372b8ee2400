import { type ChunkId, chunkKey, chunkSha256, type Entry, isNativeChunkId, type Logger, messageOf, regionConfig } from '@ferry/core';
import { chunkVerifier, originRead } from '@ferry/fetch';
import type { CopyRequest } from '@ferry/jobs';
import { GcMeta } from '@ferry/meta';
import { createStore } from '@ferry/stores';
import type { Region } from './region.js';

/** A chunk and where it sits in one file that uses it (what an imported chunk's copy needs). */
export interface ChunkUse {
  id: ChunkId;
  size: number;
  entry: Entry;
  offset: number;
}

/** How often a repair looks whether its copies have landed. */
const POLL_MS = 250;

export interface RepairOptions {
  timeoutMs: number;
  logger?: Logger;
}

/**
 * Copy bad or missing chunks into the region's store again; returns those copied (the caller
 * checks them again). In a mirror the bad objects are deleted first (a copy would otherwise find
 * an object of the right size and keep it), the chunks are marked missing, and copies from the
 * source are queued on the region's copy queue and waited for (the region's copy workers do
 * them). In the source there is no queue: each chunk is read from a mirror whose copy verifies,
 * and written here. Imported chunks in the source live at their origin, which is not ours.
 */
export async function repairChunks(region: Region, uses: ChunkUse[], options: RepairOptions): Promise<Set<string>> {
  if (region.isSource) return repairFromMirrors(region, uses, options);
  const copies = await region.copyQueue();
  const mirror = region.mirror;
  if (!copies || !mirror) return new Set();
  const gc = new GcMeta({ redis: region.redis, keys: region.meta.keys, mirror: true });
  const ids = uses.map((u) => u.id);
  await Promise.all(ids.map((id) => region.store.delete(chunkKey(id))));
  await gc.markLost(ids);
  const requests: CopyRequest[] = uses.map((u) => {
    const origin = originRead({ id: u.id, size: u.size }, { entry: u.entry, offset: u.offset });
    return { chunk: u.id, size: u.size, first: u.offset === 0, ...(origin ? { origin } : {}) };
  });
  await copies.enqueue(requests);
  const deadline = Date.now() + options.timeoutMs;
  const done = new Set<string>();
  while (done.size < ids.length && Date.now() < deadline) {
    for (const id of ids) if (!done.has(id) && (await mirror.isPresent(id))) done.add(id);
    if (done.size < ids.length) await new Promise((r) => setTimeout(r, POLL_MS));
  }
  if (done.size < ids.length) {
    options.logger?.warn({ waiting: ids.length - done.size }, 'repair: some copies did not land in time; is the region daemon running?');
  }
  return done;
}

async function repairFromMirrors(region: Region, uses: ChunkUse[], options: RepairOptions): Promise<Set<string>> {
  const names = Object.keys(region.ferry.regions).filter((r) => r !== region.name);
  const stores = names.map((name) => ({ name, store: createStore(regionConfig(region.ferry, name).store) }));
  const done = new Set<string>();
  try {
    for (const use of uses) {
      if (!isNativeChunkId(use.id)) continue;
      for (const { name, store } of stores) {
        try {
          const { body } = await store.get(chunkKey(use.id));
          const verify = chunkVerifier({ id: use.id, size: use.size }, `mirror ${name}`);
          body.on('error', (err) => verify.destroy(err));
          verify.on('error', () => {});
          await region.store.put(chunkKey(use.id), { stream: body.pipe(verify), length: use.size }, chunkSha256(use.id));
          done.add(use.id);
          break;
        } catch (err) {
          options.logger?.info({ chunk: use.id, mirror: name, reason: messageOf(err) }, 'repair: no good copy in this mirror');
        }
      }
    }
  } finally {
    await Promise.allSettled(stores.map(({ store }) => store.close?.()));
  }
  return done;
}
