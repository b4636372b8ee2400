import { CopyQueue } from '@ferry/jobs';
import { RegionReader } from '@ferry/reader';
import { createStore, type ObjectStore } from '@ferry/stores';
import type { Context, Region } from './context.js';

/**
 * A reader for a region: its own store, then the source's store (or an imported file's origin)
 * on a miss; in a mirror, chunks read from the source are queued for copying (backfill).
 * `close()` releases what the reader opened.
 */
export async function readerFor(ctx: Context, region: Region): Promise<{ reader: RegionReader; close(): Promise<void> }> {
  const origins = new Map<string, ObjectStore>();
  const source = region.isSource ? undefined : await ctx.source();
  const copies = region.isSource ? undefined : new CopyQueue({ connection: region.redis, volume: ctx.config.volume });
  const reader = new RegionReader({
    meta: region.meta,
    region: region.name,
    store: region.store,
    ...(source ? { source: { name: source.name, store: source.store } } : {}),
    openOrigin: (url) => {
      let store = origins.get(url);
      if (!store) {
        store = createStore(url);
        origins.set(url, store);
      }
      return store;
    },
    ...(copies ? { backfill: (requests) => copies.enqueue(requests) } : {}),
    // A CLI read streams each chunk once; keeping them would only cost memory.
    memoryBytes: 0,
    logger: ctx.logger.child({ component: 'reader', region: region.name }),
  });
  return {
    reader,
    async close() {
      await copies?.close();
      await Promise.allSettled([...origins.values()].map((s) => s.close?.()));
    },
  };
}
