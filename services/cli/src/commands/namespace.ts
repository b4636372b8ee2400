import { type Entry, formatBytes, NotFoundError, normalizePath } from '@ferry/core';
import { FOLDER_BATCH, Revisions } from '@ferry/meta';
import type { Context } from '../context.js';
import type { Output } from '../output.js';
import { atRevision, keepingRevisions } from '../revisions.js';

function entryJson(entry: Entry): Record<string, unknown> {
  const { chunks, ...rest } = entry;
  return { ...rest, chunkCount: chunks.length };
}

export async function lsCommand(ctx: Context, out: Output, path: string, opts: { recursive: boolean; region?: string }): Promise<void> {
  const region = await ctx.region(opts.region);
  const { path: dir, shown: display } = await atRevision(region, path);
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
        out.event({ kind: 'dir', path: display(item.path) });
        out.line(`${'DIR'.padStart(12)}  ${''.padEnd(24)}  ${display(item.path)}/`);
      } else {
        out.event({ kind: 'file', ...entryJson(item.entry), path: display(item.entry.path) });
        out.line(
          `${formatBytes(item.entry.size).padStart(12)}  ${new Date(item.entry.mtime).toISOString().padEnd(24)}  ${display(item.entry.path)}`,
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
  const at = await atRevision(region, path);
  const entry = await region.meta.stat(at.path);
  out.result({ ...entryJson(entry), path: at.shown(entry.path), chunks: entry.chunks }, [
    `path:     ${at.shown(entry.path)}`,
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
  const result = await keepingRevisions(ctx.config, region, ctx.logger, [normalizePath(path)], () =>
    region.meta.delete(normalizePath(path), { recursive: opts.recursive }),
  );
  out.result({ event: 'summary', command: 'rm', path: normalizePath(path), ...result, atomic: result.batches === 1 }, [
    `removed ${result.removed} file${result.removed === 1 ? '' : 's'} at version ${result.version}`,
    ...batchNote('removed', result.batches),
  ]);
}

export async function mvCommand(ctx: Context, out: Output, from: string, to: string, opts: { region?: string } = {}): Promise<void> {
  const region = await ctx.writable(opts.region);
  const result = await keepingRevisions(ctx.config, region, ctx.logger, [normalizePath(from), normalizePath(to)], () =>
    region.meta.rename(normalizePath(from), normalizePath(to)),
  );
  out.result(
    { event: 'summary', command: 'mv', from: normalizePath(from), to: normalizePath(to), ...result, atomic: result.batches === 1 },
    [
      `moved ${result.moved} file${result.moved === 1 ? '' : 's'} to ${normalizePath(to)} at version ${result.version}`,
      ...batchNote('moved', result.batches),
    ],
  );
}

/** `ferry revisions <repo>`: the repo's retained revisions, newest first, and which one is main. */
export async function revisionsCommand(ctx: Context, out: Output, path: string, opts: { region?: string }): Promise<void> {
  const region = await ctx.region(opts.region);
  const repo = normalizePath(path);
  const revisions = new Revisions(region.meta);
  const [list, main, aliases] = await Promise.all([revisions.list(repo), revisions.mainId(repo), revisions.aliases(repo)]);
  const names = new Map([...aliases].map(([name, id]) => [id, name]));
  if (list.length === 0 && main === undefined) throw new NotFoundError(`${repo}: no such repo (no files and no recorded revision)`);
  for (const r of list) {
    const alias = names.get(r.id);
    out.event({
      kind: 'revision',
      repo,
      ...r,
      time: new Date(r.time).toISOString(),
      main: r.id === main,
      ...(alias ? { hubCommit: alias } : {}),
    });
    out.line(
      `${r.id}  ${new Date(r.time).toISOString()}  ${String(r.files).padStart(6)} files  ${formatBytes(r.bytes).padStart(10)}${r.id === main ? '  main' : ''}${alias ? `  (Hub commit ${alias})` : ''}`,
    );
  }
  if (main !== undefined && !list.some((r) => r.id === main)) {
    out.event({ kind: 'revision', repo, id: main, main: true, recorded: false });
    out.line(`${main}  (main, not recorded yet: the next change to the repo records it)`);
  }
}
