import { createHash } from 'node:crypto';
import type { Entry } from '@ferry/core';

export { contentOf, revisionId } from '@ferry/core';

/**
 * How Hugging Face names map onto the volume: model `org/name` is the folder `<root>/org/name`,
 * dataset `org/name` is `<root>/datasets/org/name`. Names are checked here, before they become a
 * path, with the Hub's own rules (letters, digits, `.`, `_`, `-`; no `..`).
 */

export type RepoKind = 'model' | 'dataset';

export interface RepoRef {
  kind: RepoKind;
  /** `org/name`. */
  id: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** The repo named by two URL segments, or undefined when they are no repo name the Hub allows. */
export function repoRef(kind: RepoKind, org: string, name: string): RepoRef | undefined {
  for (const part of [org, name]) if (!NAME.test(part) || part.includes('..')) return undefined;
  // A model org called "datasets" would be the datasets' folder.
  if (kind === 'model' && org === 'datasets') return undefined;
  return { kind, id: `${org}/${name}` };
}

export function repoFolder(root: string, repo: RepoRef): string {
  return `${root}${repo.kind === 'dataset' ? '/datasets' : ''}/${repo.id}`;
}

/** `models/org/name` or `datasets/org/name`, as the Hub's messages name a repo. */
export function repoLabel(repo: RepoRef): string {
  return `${repo.kind === 'dataset' ? 'dataset' : 'model'} ${repo.id}`;
}

/** A file of a repo: its path inside the repo, its entry, and how the Hub shows it. */
export interface RepoFile {
  path: string;
  entry: Entry;
  /** Shown as an LFS file: its ETag and `lfs.oid` are the sha256 of its bytes. */
  lfs: boolean;
  /** What names the bytes: the file's sha256, or a hash of its content-addressed chunk list when it has none. */
  content: string;
}

/** The git-lfs pointer git stores for a large file. */
export function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

/** A git object id: sha1 of "<type> <length>\0" and the body. */
export function gitObjectId(type: 'blob' | 'tree', body: Buffer): string {
  return createHash('sha1').update(`${type} ${body.length}\0`).update(body).digest('hex');
}
