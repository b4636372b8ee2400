import { ChunkClaimedError, ConflictError, type NewEntry } from '@ferry/core';
import { conflictingPaths } from './conflicts.js';
import { chunkIdList, entryRest } from './entry.js';
import { epochCandidate, type FolderOps, outcome } from './folders.js';
import { runScript } from './scripts.js';

/**
 * How long the time GC finished deleting a chunk is kept (lua/gc-finish.lua): a writer's look at
 * the store older than this cannot be checked against it, so its commit is refused.
 */
export const GC_DELETED_KEEP_MS = 24 * 3600_000;

export interface CommitOptions {
  /** Server time at which the writer began to look at references and the store. */
  since?: number;
  /** Expiry of the writer's chunk holds, when they never lapsed. */
  held?: number;
}

export interface CommitSteps {
  /** Id of the last change record: the version of the entries of the last step. */
  version: string;
  /** Each entry with the version of the record that wrote it. */
  versions: string[];
  /** Change records written: 1 unless the entries were more than one step (FOLDER_BATCH). */
  batches: number;
}

/** An entry with the text commit.lua takes for it. */
interface Prepared {
  path: string;
  rest: string;
  ids: string;
  chunks: number;
}

/**
 * Split entries (in the order given) into steps of commit.lua of the same bounds as a folder
 * delete or rename: at most `batchFiles` files and, past a step's first file, `batchChunks` chunk
 * occurrences and `batchBytes` of entry text. One entry is never split.
 */
export function commitSteps<T extends { path: string; rest: string; ids: string; chunks: number }>(
  o: Pick<FolderOps, 'batchFiles' | 'batchChunks' | 'batchBytes'>,
  items: readonly T[],
): T[][] {
  const steps: T[][] = [];
  let step: T[] = [];
  let chunks = 0;
  let bytes = 0;
  for (const item of items) {
    const text = item.path.length + item.rest.length + item.ids.length;
    if (step.length > 0 && (step.length >= o.batchFiles || chunks + item.chunks > o.batchChunks || bytes + text > o.batchBytes)) {
      steps.push(step);
      step = [];
      chunks = 0;
      bytes = 0;
    }
    if (step.length > 0) {
      chunks += item.chunks;
      bytes += text;
    }
    step.push(item);
  }
  if (step.length > 0) steps.push(step);
  return steps;
}

/**
 * Commit entries the caller validated (no path twice, none under another) in bounded steps, each
 * one atomic change record (commit.lua). More than one step: the paths are checked for conflicts
 * with the namespace first, in one pipelined pass, so a put that would be refused is refused
 * before anything is written; a conflict or claim that arises between the check and a later step
 * (a concurrent change) stops there, and the error says how many files are in.
 */
export async function commitInSteps(o: FolderOps, entries: readonly NewEntry[], options: CommitOptions): Promise<CommitSteps> {
  const prepared: Prepared[] = entries.map((e) => ({ path: e.path, rest: entryRest(e), ids: chunkIdList(e), chunks: e.chunks.length }));
  const steps = commitSteps(o, prepared);
  if (steps.length > 1) await refuseConflicts(o, entries);
  const since = options.since === undefined ? '' : String(Math.floor(options.since));
  const held = options.held === undefined ? '' : String(Math.floor(options.held));
  const { entries: h, paths, log, refs, unreferenced, epoch, unreferencedBy, gcClaims, gcDeleted, gcHolds } = o.keys;
  const keys = [h, paths, log, refs, unreferenced, epoch, unreferencedBy, gcClaims, gcDeleted, gcHolds];
  const versions: string[] = [];
  let version = '';
  for (const step of steps) {
    const args: Array<string | number> = [o.logMaxLen, epochCandidate(), since, GC_DELETED_KEEP_MS, held];
    for (const e of step) args.push(e.path, e.rest, e.ids);
    const result = outcome(await runScript(o.redis, 'commit', keys, args));
    if ('failure' in result) throw stepFailure(result.failure, result.args, versions.length, entries.length);
    version = result.version;
    for (let i = 0; i < step.length; i++) versions.push(version);
    o.log.debug({ version, entries: step.length, step: versions.length }, 'committed');
  }
  return { version, versions, batches: steps.length };
}

async function refuseConflicts(o: FolderOps, entries: readonly NewEntry[]): Promise<void> {
  // One pipeline per slice keeps the client's buffers bounded; the caller checked the batch itself.
  const SLICE = 10_000;
  for (let i = 0; i < entries.length; i += SLICE) {
    const conflicts = await conflictingPaths(
      o.redis,
      o.keys,
      entries.slice(i, i + SLICE).map((e) => e.path),
    );
    const [first] = conflicts;
    if (first !== undefined) {
      const more = conflicts.size > 1 ? ` (and ${conflicts.size - 1} more)` : '';
      throw new ConflictError(`commit ${first}${more}: is an existing directory, or under an existing file; nothing committed`);
    }
  }
}

function stepFailure(failure: string, args: string[], committed: number, total: number): Error {
  const after = committed > 0 ? ` (after committing ${committed} of ${total} files, which stay)` : '';
  if (failure === 'claimed' || failure === 'stale') {
    const why =
      args.length > 0
        ? `garbage collection deleted or is deleting ${args.length} of its chunks (${args[0]}…)`
        : 'its look at the store is too old';
    return new ChunkClaimedError(`commit: ${why}; upload them again${after}`, { chunks: args });
  }
  const [path, ancestor] = args;
  if (failure === 'dir') return new ConflictError(`commit ${path}: is an existing directory${after}`);
  if (failure === 'file') return new ConflictError(`commit ${path}: ${ancestor} is a file${after}`);
  return new Error(`commit: unexpected script reply ${failure}`);
}
