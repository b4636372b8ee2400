import { formatBytes, InvalidArgumentError, normalizePath } from '@ferry/core';
import {
  type HubImportSummary,
  type ImportProgress,
  type ImportSummary,
  importHub,
  importPrefix,
  originStoreUrl,
  SKIP_REASONS,
} from '@ferry/importer';
import { Revisions } from '@ferry/meta';
import { createStore, HfStore } from '@ferry/stores';
import type { Context } from '../context.js';
import type { Output } from '../output.js';
import { keepingRevisions } from '../revisions.js';

export interface ImportCommandOptions {
  delete: boolean;
  dryRun: boolean;
  concurrency: number;
}

const n = (value: number) => value.toLocaleString('en-US');

function plural(count: number, word: string): string {
  return `${n(count)} ${word}${count === 1 ? '' : 's'}`;
}

/**
 * Progress while listing: JSON `progress` lines with --json, a self-overwriting stderr line on a
 * terminal, nothing otherwise (pipes and logs stay clean).
 */
function progressReporter(out: Output): { report(p: ImportProgress): void; done(): void } {
  if (out.json) {
    return {
      report: (p) =>
        out.event({
          event: 'progress',
          command: 'import',
          phase: p.phase,
          listed: p.listed,
          new: p.new,
          changed: p.changed,
          unchanged: p.unchanged,
          skipped: p.skipped,
          deleted: p.deleted,
          objectsPerSecond: p.objectsPerSecond,
        }),
      done: () => {},
    };
  }
  const tty = process.stderr.isTTY ? process.stderr : undefined;
  let shown = false;
  return {
    report(p) {
      if (!tty) return;
      const what =
        p.phase === 'list'
          ? `listed ${n(p.listed)}: ${n(p.new)} new, ${n(p.changed)} changed, ${n(p.unchanged)} unchanged, ${n(p.skipped)} skipped (${n(p.objectsPerSecond)}/s)`
          : `removing vanished objects: ${n(p.deleted)} deleted`;
      tty.write(`\r\x1b[2Kimport ${what}`.slice(0, Math.max(20, (tty.columns ?? 120) + 6)));
      shown = true;
    },
    done() {
      if (shown) tty?.write('\r\x1b[2K');
    },
  };
}

function humanSummary(s: ImportSummary): string[] {
  const verb = s.dryRun ? 'would import' : 'imported';
  const lines = [
    `${s.dryRun ? 'dry run: ' : ''}${verb} ${s.origin} into ${s.target}${s.resumed ? ' (resumed)' : ''}: listed ${plural(s.listed, 'object')} (${formatBytes(s.bytesListed)})`,
    `${n(s.new)} new, ${n(s.changed)} changed, ${n(s.unchanged)} unchanged, ${n(s.deleted)} ${s.dryRun ? 'to delete' : 'deleted'}, ${n(s.skipped)} skipped; ${formatBytes(s.bytesReferenced)} referenced in place (not copied), ${plural(s.commits, 'change record')}; ${s.seconds.toFixed(1)} s, ${n(s.objectsPerSecond)} objects/s`,
  ];
  for (const [reason, count] of Object.entries(s.skippedBy)) {
    lines.push(`skipped ${n(count ?? 0)}: ${SKIP_REASONS[reason as keyof typeof SKIP_REASONS] ?? reason}`);
  }
  for (const { key, reason } of s.skippedExamples)
    lines.push(`  ${JSON.stringify(key.length > 120 ? `${key.slice(0, 117)}...` : key)}: ${reason}`);
  if (s.skipped > s.skippedExamples.length) lines.push(`  (${n(s.skipped - s.skippedExamples.length)} more not shown)`);
  return lines;
}

/**
 * `ferry import <store-url> <path>`: reference the objects under a bucket prefix as files under
 * `<path>` without copying their bytes. Re-runs commit only new or changed objects; `--delete`
 * also removes files whose object is gone. Writes go to the source region only.
 */
export async function importCommand(ctx: Context, out: Output, storeUrl: string, path: string, opts: ImportCommandOptions): Promise<void> {
  if (storeUrl.startsWith('hf://')) return hubImportCommand(ctx, out, storeUrl, path, opts);
  const originUrl = originStoreUrl(storeUrl);
  const target = normalizePath(path);
  const region = await ctx.writable();
  const origin = createStore(originUrl);
  const progress = progressReporter(out);
  let summary: ImportSummary;
  try {
    const run = () =>
      importPrefix({
        meta: region.meta,
        origin,
        originUrl,
        target,
        chunkSize: ctx.config.chunkSize,
        delete: opts.delete,
        dryRun: opts.dryRun,
        concurrency: opts.concurrency,
        progressMs: out.json ? 500 : 200,
        onProgress: (p) => progress.report(p),
        logger: ctx.logger.child({ command: 'import' }),
      });
    summary = opts.dryRun ? await run() : await keepingRevisions(ctx.config, region, ctx.logger, [target], run);
  } finally {
    progress.done();
    await origin.close?.();
  }
  out.result({ event: 'summary', command: 'import', ...summary }, humanSummary(summary));
}

/** `hf://org/name[@revision]` or `hf://datasets/org/name[@revision]`. */
export function parseHubUrl(url: string): { repo: string; revision: string } {
  const m = /^hf:\/\/((?:datasets\/)?[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([^@\s]+))?$/.exec(url);
  if (!m || m[1]?.includes('..')) {
    throw new InvalidArgumentError(`invalid repo URL "${url}": expected hf://org/name[@revision] or hf://datasets/org/name[@revision]`);
  }
  return { repo: m[1] as string, revision: m[2] ?? 'main' };
}

/**
 * `ferry import hf://org/name[@revision] <path>`: the repo at that commit, from HF_ENDPOINT
 * (default https://huggingface.co) with HF_TOKEN or hub.token, metadata only for LFS files.
 */
async function hubImportCommand(ctx: Context, out: Output, url: string, path: string, opts: ImportCommandOptions): Promise<void> {
  const { repo, revision } = parseHubUrl(url);
  const target = normalizePath(path);
  const endpoint = (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/\s]+$/.test(endpoint))
    throw new InvalidArgumentError(`HF_ENDPOINT must be http(s)://host[:port], got "${endpoint}"`);
  const token = process.env.HF_TOKEN || ctx.config.hub?.token;
  const region = await ctx.writable();
  const hub = new HfStore({ endpoint, repo, ...(token ? { token } : {}) });
  // LFS files are metadata only: the bytes to show are the small files fetched.
  const progress = out.progress('import', 0);
  let s: HubImportSummary;
  try {
    const run = () =>
      importHub({
        meta: region.meta,
        store: region.store,
        hub,
        revision,
        target,
        chunkSize: ctx.config.chunkSize,
        dryRun: opts.dryRun,
        logger: ctx.logger.child({ command: 'import' }),
        onTotal: (bytes) => progress.grow(bytes),
        onBytes: (bytes) => progress.tick(bytes),
      });
    s = opts.dryRun ? await run() : await keepingRevisions(ctx.config, region, ctx.logger, [target], run);
    // The repo's revision is also known by the Hub's commit id, in every region.
    if (!opts.dryRun && ctx.config.hub) {
      const revisions = new Revisions(region.meta);
      const id = await revisions.mainId(target);
      if (id) await revisions.alias(target, id, s.commit);
    }
  } finally {
    progress.stop();
    await hub.close();
  }
  out.result({ event: 'summary', command: 'import', ...s }, [
    `${opts.dryRun ? 'would import' : 'imported'} ${s.repo} at ${s.commit} (${revision}) to ${target}: ${s.files} files (${s.lfsFiles} LFS, metadata only; ${s.smallFiles} small, ${formatBytes(s.smallBytes)} fetched and checked)`,
    `${s.committed} committed, ${s.removed} removed${s.committed + s.removed === 0 ? ': nothing changed' : ''}`,
  ]);
}
