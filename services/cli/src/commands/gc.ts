import { formatBytes, parseDuration } from '@ferry/core';
import { collectGarbage, type GcReport } from '@ferry/region';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

export interface GcCommandOptions {
  region?: string;
  /** Default: the region's `gc.grace`. */
  grace?: string;
  dryRun: boolean;
}

/** `ferry gc`: one garbage-collection pass over a region's store. */
export async function gcCommand(ctx: Context, out: Output, opts: GcCommandOptions): Promise<void> {
  const given = opts.grace === undefined ? undefined : parseDuration(opts.grace);
  const region = await ctx.region(opts.region);
  const graceMs = given ?? region.gcGraceMs;
  const report = await collectGarbage(region, { graceMs, dryRun: opts.dryRun, logger: ctx.logger });
  out.result({ ...report }, humanGc(report));
}

function humanGc(r: GcReport): string[] {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const count = r.dryRun ? r.reclaimable.chunks + r.orphans.objects : r.reclaimed.chunks;
  const bytes = r.dryRun ? r.reclaimable.bytes + r.orphans.bytes : r.reclaimed.bytes;
  // A dry run does not look at temp files: it says nothing of them.
  const temp = r.dryRun ? '' : `; ${r.temp.files} temp file${r.temp.files === 1 ? '' : 's'} removed`;
  const lines = [
    `${r.region}: ${verb} ${count} chunk${count === 1 ? '' : 's'} (${formatBytes(bytes)}), ${r.orphans.objects} of them orphans${temp}`,
  ];
  for (const [mirror, held] of Object.entries(r.heldBack)) {
    lines.push(
      `${r.region}: kept ${held.chunks} chunk${held.chunks === 1 ? '' : 's'} (${formatBytes(held.bytes)}) that mirror ${mirror} has not caught up past (${held.examples.join(', ')}${held.chunks > held.examples.length ? ', …' : ''})`,
    );
  }
  return lines;
}
