import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError, InvalidPathError, type Logger, NotFoundError } from '@ferry/core';
import type { VolumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { runScript } from './scripts.js';

/**
 * How large one step of a folder delete or rename may be: up to this many files and, past the
 * first file, this many chunk occurrences and bytes of entries. The work of the script, and of a
 * mirror's apply of its record, grows with the chunks (measured: about 10 ms per 1,000 in a
 * delete's apply); the record with the bytes. Sized so a step stays well under 50 ms and its
 * record under about 1 MiB. A folder within these bounds is removed or moved in one atomic
 * record; a larger one in several records, each atomic, in path order: between them readers and
 * mirrors see the folder partly removed or partly moved. One entry is never split: a single file
 * of more chunks is one step of its own.
 */
export const FOLDER_BATCH = { files: 250, chunks: 1000, bytes: 2 ** 20 } as const;

export interface DeleteResult {
  /** Id of the last change record (the only one unless `batches` > 1). */
  version: string;
  removed: number;
  /** Change records written: 1 unless the folder was larger than one batch. */
  batches: number;
}

export interface RenameResult {
  /** Id of the last change record (the only one unless `batches` > 1). */
  version: string;
  moved: number;
  /** Change records written: 1 unless the folder was larger than one batch. */
  batches: number;
}

type Outcome = { version: string; count: number; more: boolean } | { failure: string; args: string[] };

export function outcome(reply: unknown): Outcome {
  const [status, ...args] = (reply as unknown[]).map(String);
  if (status === 'ok') return { version: args[0] as string, count: Number(args[1]), more: args[2] === '1' };
  return { failure: status ?? 'empty reply', args };
}

/** A random epoch, offered to the scripts that make the volume's epoch when it has none. */
export function epochCandidate(): string {
  return randomBytes(8).toString('hex');
}

export interface FolderOps {
  redis: RedisClient;
  keys: VolumeKeys;
  logMaxLen: number;
  batchFiles: number;
  batchChunks: number;
  batchBytes: number;
  log: Logger;
}

/** delete.lua until the folder is empty; the path is normalised. */
export async function deleteInBatches(o: FolderOps, p: string, recursive: boolean): Promise<DeleteResult> {
  const { entries, paths, log, refs, unreferenced, epoch, unreferencedBy } = o.keys;
  const keys = [entries, paths, log, refs, unreferenced, epoch, unreferencedBy];
  let removed = 0;
  let batches = 0;
  for (;;) {
    const args = [o.logMaxLen, p, recursive ? '1' : '0', o.batchFiles, o.batchChunks, o.batchBytes, epochCandidate()];
    const result = outcome(await runScript(o.redis, 'delete', keys, args));
    if ('failure' in result) {
      if (result.failure === 'notfound' && batches > 0) {
        throw new ConflictError(`delete ${p}: removed ${removed} files, then the rest was gone (removed meanwhile)`);
      }
      if (result.failure === 'notfound') throw new NotFoundError(`delete ${p}: no such file or directory`);
      if (result.failure === 'isdir')
        throw new InvalidArgumentError(`delete ${p}: is a directory; remove it and everything below with -R (ferry rm -R)`);
      throw new Error(`delete: unexpected script reply ${result.failure}`);
    }
    removed += result.count;
    batches += 1;
    o.log.debug({ version: result.version, path: p, removed: result.count, batch: batches }, 'deleted');
    if (!result.more) return { version: result.version, removed, batches };
  }
}

/** rename.lua until everything under `src` has moved; both paths are normalised and checked. */
export async function renameInBatches(o: FolderOps, src: string, dst: string): Promise<RenameResult> {
  const what = `rename ${src} to ${dst}`;
  const { entries, paths, log, moves, epoch } = o.keys;
  let moved = 0;
  let batches = 0;
  for (;;) {
    const args = [o.logMaxLen, src, dst, o.batchFiles, o.batchChunks, o.batchBytes, epochCandidate()];
    const result = outcome(await runScript(o.redis, 'rename', [entries, paths, log, moves, epoch], args));
    if ('failure' in result) {
      const [path, ancestor] = result.args;
      const done = batches > 0 ? ` after moving ${moved} files; run it again to finish` : '';
      if (result.failure === 'notfound') throw new NotFoundError(`rename ${src}: no such file or directory`);
      if (result.failure === 'exists') throw new ConflictError(`${what}: ${path} already exists${done}`);
      if (result.failure === 'file') throw new ConflictError(`${what}: ${ancestor} is a file${done}`);
      if (result.failure === 'busy')
        throw new ConflictError(`${what}: a move of ${src} to ${path} is unfinished; run that one again to finish it`);
      if (result.failure === 'toolong') throw new InvalidPathError(`${what}: ${path?.slice(0, 80)}… would be longer than 1024 bytes`);
      throw new Error(`rename: unexpected script reply ${result.failure}`);
    }
    moved += result.count;
    batches += 1;
    o.log.debug({ version: result.version, from: src, to: dst, moved: result.count, batch: batches }, 'renamed');
    if (!result.more) return { version: result.version, moved, batches };
  }
}
