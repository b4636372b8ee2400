import { basename, join } from 'node:path';
import { forEachLimit, formatBytes, normalizePath } from '@ferry/core';
import { openReader } from '@ferry/region';
import { planPut, putFiles } from '@ferry/writer';
import type { Context } from '../context.js';
import type { Output } from '../output.js';
import { destinationFor, getFile } from '../transfer/get-files.js';

export async function putCommand(
  ctx: Context,
  out: Output,
  local: string,
  target: string,
  opts: { concurrency: number; region?: string },
): Promise<void> {
  const region = await ctx.writable(opts.region);
  const { files } = await planPut(local, target);
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const progress = out.progress('put', total);
  const started = Date.now();
  let summary: Awaited<ReturnType<typeof putFiles>>;
  try {
    summary = await putFiles({
      store: region.store,
      meta: region.meta,
      files,
      chunkSize: ctx.config.chunkSize,
      concurrency: opts.concurrency,
      onBytes: (d) => progress.tick(d),
      logger: ctx.logger.child({ command: 'put' }),
    });
  } finally {
    progress.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const { entries: _entries, ...figures } = summary;
  out.result({ event: 'summary', command: 'put', ...figures, seconds }, [
    summary.filesChanged === 0
      ? `put ${summary.files} file${summary.files === 1 ? '' : 's'} (${formatBytes(summary.bytes)}) to ${normalizePath(target)}: all unchanged, nothing committed (version ${summary.version})`
      : `put ${summary.files} file${summary.files === 1 ? '' : 's'} (${formatBytes(summary.bytes)}) to ${normalizePath(target)}: ${summary.filesChanged} committed at version ${summary.version}`,
    `chunks: ${summary.chunks} (${summary.chunksUploaded} uploaded, ${formatBytes(summary.bytesUploaded)}; ${summary.chunksPresent} already present) in ${seconds.toFixed(1)} s`,
  ]);
}

export async function getCommand(
  ctx: Context,
  out: Output,
  path: string,
  local: string,
  opts: { region?: string; concurrency: number },
): Promise<void> {
  const region = await ctx.region(opts.region);
  const root = normalizePath(path);
  const entries = await region.meta.filesUnder(root);
  const single = entries.length === 1 && entries[0]?.path === root ? entries[0] : undefined;
  // A CLI read streams each chunk once: no memory cache.
  const reader = openReader(region, { memoryBytes: 0 });
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  const progress = out.progress('get', total);
  const started = Date.now();
  try {
    if (single)
      await getFile(single, await destinationFor(local, basename(root)), {
        reader,
        prefetch: opts.concurrency,
        onBytes: (d) => progress.tick(d),
      });
    // Files a few at a time, each with its own prefetch of 4 chunks: about `concurrency` chunks in flight.
    else
      await forEachLimit(entries, Math.max(1, Math.ceil(opts.concurrency / 4)), async (e) => {
        const rel = root === '/' ? e.path.slice(1) : e.path.slice(root.length + 1);
        await getFile(e, join(local, ...rel.split('/')), { reader, prefetch: 4, onBytes: (d) => progress.tick(d) });
      });
  } finally {
    progress.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const tiers = reader.chunks.stats;
  out.result(
    {
      event: 'summary',
      command: 'get',
      region: region.name,
      files: entries.length,
      bytes: total,
      seconds,
      tiers,
      backfilled: reader.backfilled,
    },
    [
      `got ${entries.length} file${entries.length === 1 ? '' : 's'} (${formatBytes(total)}) from region ${region.name} in ${seconds.toFixed(1)} s, sha256 verified`,
      `bytes by tier: ${tierLine(tiers.bytes)}${reader.backfilled ? `; ${reader.backfilled} chunks queued for copying into ${region.name}` : ''}`,
    ],
  );
}

export async function catCommand(ctx: Context, out: Output, path: string, opts: { region?: string }): Promise<void> {
  const region = await ctx.region(opts.region);
  const entry = await region.meta.stat(normalizePath(path));
  // A CLI read streams each chunk once: no memory cache.
  const reader = openReader(region, { memoryBytes: 0 });
  for await (const bytes of reader.stream(entry)) {
    if (!process.stdout.write(bytes)) await new Promise((r) => process.stdout.once('drain', r));
  }
  // stdout carries the file; the --json report goes to stderr.
  if (out.json)
    process.stderr.write(
      `${JSON.stringify({ event: 'summary', command: 'cat', region: region.name, bytes: entry.size, tiers: reader.chunks.stats, backfilled: reader.backfilled })}\n`,
    );
}

function tierLine(bytes: Record<string, number>): string {
  const used = Object.entries(bytes).filter(([, n]) => n > 0);
  return used.length === 0 ? 'none' : used.map(([tier, n]) => `${tier} ${formatBytes(n)}`).join(', ');
}
