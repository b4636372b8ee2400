import { createHash } from 'node:crypto';
import type { Entry } from './types.js';

/**
 * A repo's revision: an immutable file list with a 40-hex id computed from it (each file's path
 * inside the repo, size and content), so every region that holds the same entries computes the
 * same id without a word between them, and an id can never name two different file lists.
 */

/**
 * The content of a file as 64 hex digits: its sha256 when recorded (every put records it), else
 * a hash of its content-addressed chunk list (an imported file not read whole yet), as immutable.
 */
export function contentOf(entry: Pick<Entry, 'sha256' | 'size' | 'chunks'>): string {
  if (entry.sha256) return entry.sha256;
  const hash = createHash('sha256').update(`ferry-content\n${entry.size}\n`);
  for (const chunk of entry.chunks) hash.update(`${chunk.id}:${chunk.size}\n`);
  return hash.digest('hex');
}

/** A file of a revision: its path inside the repo, in the volume's order (UTF-8 bytes). */
export interface RevisionFile {
  path: string;
  size: number;
  content: string;
}

export function revisionId(files: Iterable<RevisionFile>): string {
  const hash = createHash('sha1').update('ferry-revision 1\n');
  for (const f of files) hash.update(`${f.path}\0${f.size}\0${f.content}\n`);
  return hash.digest('hex');
}

/** `main` or a 40-hex revision id. */
export const REVISION_NAME = /^(main|[0-9a-f]{40})$/;
