import { type FerryConfig, type Logger, normalizePath } from '@ferry/core';
import { Revisions, reposUnder, splitRevision } from '@ferry/meta';
import type { Region } from './context.js';

/**
 * Run a change at the source (put, rm, mv, import) so that the repos it touches under the hub's
 * root keep their revisions: each repo's current files are recorded before the change (a no-op
 * unless a crash skipped it last time) and after it, then old revisions past `hub.keepRevisions`
 * and `hub.keepFor` are dropped. Without a `hub` section nothing is recorded.
 */
export async function keepingRevisions<T>(
  config: FerryConfig,
  region: Region,
  logger: Logger,
  paths: readonly string[],
  change: () => Promise<T>,
): Promise<T> {
  const hub = config.hub;
  if (!hub) return change();
  const revisions = new Revisions(region.meta);
  const touched = async () => [...new Set((await Promise.all(paths.map((p) => reposUnder(region.meta, hub.root, p)))).flat())];
  const before = await touched();
  for (const repo of before) await revisions.record(repo);
  const result = await change();
  for (const repo of new Set([...before, ...(await touched())])) {
    const recorded = await revisions.record(repo);
    const dropped = await revisions.prune(repo, { keep: hub.keepRevisions, keepFor: hub.keepFor });
    if (recorded?.created || dropped.length > 0) logger.info({ repo, revision: recorded?.id, dropped }, 'repo revision recorded');
  }
  return result;
}

/**
 * The volume path a command's `<path>[@<revision>]` reads, and how to show a path read there: as
 * the repo's own path (`/hf/acme/x/config.json`), not the revision's folder.
 */
export async function atRevision(region: Region, spec: string): Promise<{ path: string; shown: (path: string) => string }> {
  const { path, revision } = splitRevision(spec);
  const wanted = normalizePath(path);
  if (!revision) return { path: wanted, shown: (p) => p };
  const at = await new Revisions(region.meta).resolve(wanted, revision);
  return { path: at, shown: (p) => (p === at || p.startsWith(`${at}/`) ? wanted + p.slice(at.length) : p) };
}
