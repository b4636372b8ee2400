import { ChunkReader, storeTier, type Tier } from '@ferry/reader';
import type { Context, Region } from './context.js';

/** A chunk reader for a region: its own store first, then the source's store on a miss. */
export async function readerFor(ctx: Context, region: Region): Promise<ChunkReader> {
  const tiers: Tier[] = [storeTier(region.name, region.store)];
  if (!region.isSource) tiers.push(storeTier(`source:${ctx.config.source}`, (await ctx.source()).store));
  return new ChunkReader({ tiers, logger: ctx.logger.child({ component: 'reader' }) });
}
