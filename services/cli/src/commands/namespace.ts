import { type Entry, formatBytes, normalizePath } from '@ferry/core';
import { FOLDER_BATCH } from '@ferry/meta';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

function entryJson(entry: Entry): Record<string, unknown> {
  const { chunks, ...rest } = entry;
  return { ...rest, chunkCount: chunks.length };
}

export async function lsCommand(ctx: Context, out: Output, path: string, opts: { recursive: boolean; region?: string }): Promise<void> {
  const region = await ctx.region(opts.region);
  const dir = normalizePath(path);
  let cursor: string | undefined;
  let shown = 0;
  do {
    // A recursive page is one script reading every entry of the page: 500 halves the longest a
    // listing blocks Redis (at 10⁶ files the scale benchmark's slowest page of 1,000 took 47-49 ms).
    const limit = opts.recursive ? 500 : 1000;
    const page = await region.meta.list(dir, { recursive: opts.recursive, limit, ...(cursor ? { cursor } : {}) });
    for (const item of page.items) {
      shown += 1;
      if (item.kind === 'dir') {
        out.event({ kind: 'dir', path: item.path });
        out.line(`${'DIR'.padStart(12)}  ${''.padEnd(24)}  ${item.path}/`);
      } else {
        out.event({ kind: 'file', ...entryJson(item.entry) });
        out.line(
          `${formatBytes(item.entry.size).padStart(12)}  ${new Date(item.entry.mtime).toISOString().padEnd(24)}  ${item.entry.path}`,
        );
      }
    }
    cursor = page.cursor;
    await out.drained();
  } while (cursor);
  if (shown === 0 && dir !== '/') await region.meta.stat(dir); // a missing path is an error, an empty root is not
}

export async function statCommand(ctx: Context, out: Output, path: string, opts: { region?: string }): Promise<void> {
  const region = await ctx.region(opts.region);
  const entry = await region.meta.stat(normalizePath(path));
  out.result({ ...entryJson(entry), chunks: entry.chunks }, [
    `path:     ${entry.path}`,
    `size:     ${entry.size} (${formatBytes(entry.size)})`,
    `version:  ${entry.version}`,
    `sha256:   ${entry.sha256 ?? '(unknown)'}`,
    `chunks:   ${entry.chunks.length} × up to ${formatBytes(entry.chunkSize)}`,
    `mtime:    ${new Date(entry.mtime).toISOString()}`,
    ...(entry.origin ? [`origin:   ${entry.origin.store} ${entry.origin.key} (etag ${entry.origin.etag})`] : []),
  ]);
}

/** What a folder operation of several records does and does not guarantee, for the person who ran it. */
function batchNote(verb: 'removed' | 'moved', batches: number): string[] {
  if (batches <= 1) return [];
  return [
    `(in ${batches} steps of up to ${FOLDER_BATCH.files} files each: a folder of more than ${FOLDER_BATCH.files} files is not ${verb} in one atomic step, so readers and mirrors may have seen it partly ${verb} meanwhile; each step is atomic, and if the command is interrupted, running it again finishes it)`,
  ];
}

export async function rmCommand(ctx: Context, out: Output, path: string, opts: { recursive: boolean; region?: string }): Promise<void> {
  const region = await ctx.writable(opts.region);
  const result = await region.meta.delete(normalizePath(path), { recursive: opts.recursive });
  out.result({ event: 'summary', command: 'rm', path: normalizePath(path), ...result, atomic: result.batches === 1 }, [
    `removed ${result.removed} file${result.removed === 1 ? '' : 's'} at version ${result.version}`,
    ...batchNote('removed', result.batches),
  ]);
}

export async function mvCommand(ctx: Context, out: Output, from: string, to: string, opts: { region?: string } = {}): Promise<void> {
  const region = await ctx.writable(opts.region);
  const result = await region.meta.rename(normalizePath(from), normalizePath(to));
  out.result(
    { event: 'summary', command: 'mv', from: normalizePath(from), to: normalizePath(to), ...result, atomic: result.batches === 1 },
    [
      `moved ${result.moved} file${result.moved === 1 ? '' : 's'} to ${normalizePath(to)} at version ${result.version}`,
      ...batchNote('moved', result.batches),
    ],
  );
}
