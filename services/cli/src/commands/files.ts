import { basename, join } from 'node:path';
import { forEachLimit, formatBytes, normalizePath, UnauthorizedError } from '@ferry/core';
import { openReader } from '@ferry/region';
import { planPut, putFiles } from '@ferry/writer';
import type { Context, Region } from '../context.js';
import type { Output } from '../output.js';
import { atRevision, keepingRevisions } from '../revisions.js';
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
    summary = await keepingRevisions(ctx.config, region, ctx.logger, [normalizePath(target)], () =>
      putFiles({
        store: region.store,
        meta: region.meta,
        files,
        chunkSize: ctx.config.chunkSize,
        concurrency: opts.concurrency,
        holdTtlMs: ctx.config.writer.holdTtl,
        onBytes: (d) => progress.tick(d),
        logger: ctx.logger.child({ command: 'put' }),
      }),
    );
  } finally {
    progress.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const { entries: _entries, ...figures } = summary;
  out.result({ event: 'summary', command: 'put', ...figures, seconds }, [
    summary.filesChanged === 0
      ? `put ${summary.files} file${summary.files === 1 ? '' : 's'} (${formatBytes(summary.bytes)}) to ${normalizePath(target)}: all unchanged, nothing committed (version ${summary.version})`
      : `put ${summary.files} file${summary.files === 1 ? '' : 's'} (${formatBytes(summary.bytes)}) to ${normalizePath(target)}: ${summary.filesChanged} committed ${summary.records > 1 ? `in ${summary.records} records, the last ` : ''}at version ${summary.version}`,
    `chunks: ${summary.chunks} (${summary.chunksUploaded} uploaded, ${formatBytes(summary.bytesUploaded)}; ${summary.chunksPresent} already present) in ${seconds.toFixed(1)} s`,
  ]);
}

export async function getCommand(
  ctx: Context,
  out: Output,
  path: string,
  local: string,
  opts: { region?: string; concurrency: number; bestEffort?: boolean; verifyFile?: boolean },
): Promise<void> {
  const region = await ctx.region(opts.region);
  const root = (await atRevision(region, path)).path;
  const entries = await region.meta.filesUnder(root);
  const single = entries.length === 1 && entries[0]?.path === root ? entries[0] : undefined;
  const reader = cliReader(region, opts);
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  const progress = out.progress('get', total);
  const started = Date.now();
  try {
    await reading(async () => {
      if (single)
        await getFile(single, await destinationFor(local, basename(root)), {
          reader,
          prefetch: opts.concurrency,
          onBytes: (d) => progress.tick(d),
          verifyFile: opts.verifyFile === true,
        });
      // Files a few at a time, each with its own prefetch of 4 chunks: about `concurrency` chunks in flight.
      else
        await forEachLimit(entries, Math.max(1, Math.ceil(opts.concurrency / 4)), async (e) => {
          const rel = root === '/' ? e.path.slice(1) : e.path.slice(root.length + 1);
          await getFile(e, join(local, ...rel.split('/')), {
            reader,
            prefetch: 4,
            onBytes: (d) => progress.tick(d),
            verifyFile: opts.verifyFile === true,
          });
        });
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

export async function catCommand(ctx: Context, out: Output, path: string, opts: { region?: string; bestEffort?: boolean }): Promise<void> {
  const region = await ctx.region(opts.region);
  const entry = await region.meta.stat((await atRevision(region, path)).path);
  const reader = cliReader(region, opts);
  await reading(async () => {
    for await (const bytes of reader.stream(entry)) {
      if (!process.stdout.write(bytes)) await new Promise((r) => process.stdout.once('drain', r));
    }
  });
  // stdout carries the file; the --json report goes to stderr.
  if (out.json)
    process.stderr.write(
      `${JSON.stringify({ event: 'summary', command: 'cat', region: region.name, bytes: entry.size, tiers: reader.chunks.stats, backfilled: reader.backfilled })}\n`,
    );
}

/**
 * The reader of a CLI read: each chunk streamed once (no memory cache); a cache node that refuses
 * the read token fails the command unless --best-effort asked to read around it.
 */
function cliReader(region: Region, opts: { bestEffort?: boolean }) {
  return openReader(region, { memoryBytes: 0, onRefusedToken: opts.bestEffort ? 'read-around' : 'fail' });
}

/** Run a CLI read; a refused cache token names the way around it. */
async function reading<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    throw new UnauthorizedError(`${err.message}; --best-effort reads around the cache`, { cause: err });
  }
}

function tierLine(bytes: Record<string, number>): string {
  const used = Object.entries(bytes).filter(([, n]) => n > 0);
  return used.length === 0 ? 'none' : used.map(([tier, n]) => `${tier} ${formatBytes(n)}`).join(', ');
}
