import { createHash } from 'node:crypto';
import { HubError } from './errors.js';
import type { BlobOids } from './oids.js';
import { pointerSize } from './oids.js';
import type { RepoFile, RepoRef } from './repos.js';
import type { RepoSnapshot } from './snapshots.js';

/**
 * The JSON the Hub answers for repo info, tree and refs, built from a snapshot. Pure but for the
 * blob ids of small files (read once, then remembered), so each shape is tested without a server.
 */

/** Entries of one tree page, as the Hub pages them without `expand`. */
export const TREE_PAGE = 1_000;

function lfsOf(file: RepoFile) {
  return { oid: file.content, size: file.entry.size, pointerSize: pointerSize(file) };
}

/** `GET /api/{models,datasets}/{repo}[/revision/{rev}]`: what `model_info` / `dataset_info` read. */
export async function repoInfo(
  repo: RepoRef,
  snapshot: RepoSnapshot,
  query: { blobs: boolean; expand: string[] },
  oids: BlobOids,
): Promise<Record<string, unknown>> {
  const blobIds = query.blobs ? await oids.ofAll(snapshot.files) : undefined;
  const siblings = snapshot.files.map((f) =>
    blobIds
      ? {
          rfilename: f.path,
          size: f.entry.size,
          blobId: blobIds.get(f),
          ...(f.lfs ? { lfs: { sha256: f.content, size: f.entry.size, pointerSize: pointerSize(f) } } : {}),
        }
      : { rfilename: f.path },
  );
  const modified = new Date(snapshot.lastModified).toISOString();
  const body: Record<string, unknown> = {
    _id: createHash('sha1').update(`${repo.kind}:${repo.id}`).digest('hex').slice(0, 24),
    id: repo.id,
    ...(repo.kind === 'model' ? { modelId: repo.id } : {}),
    author: repo.id.split('/')[0],
    sha: snapshot.revision,
    lastModified: modified,
    createdAt: modified,
    private: false,
    gated: false,
    disabled: false,
    downloads: 0,
    likes: 0,
    tags: [],
    siblings,
    usedStorage: snapshot.files.reduce((n, f) => n + f.entry.size, 0),
  };
  if (query.expand.length > 0) {
    for (const key of Object.keys(body)) if (key !== '_id' && key !== 'id' && !query.expand.includes(key)) delete body[key];
  }
  return body;
}

export interface TreeItem {
  type: 'file' | 'directory';
  path: string;
  oid: string;
  size: number;
  lfs?: { oid: string; size: number; pointerSize: number };
}

/**
 * The entries under `dir` ('' for the repo's root) in git's order, folders before what they hold;
 * with `recursive` every level. Undefined when `dir` is no folder of the revision.
 */
export function treeListing(snapshot: RepoSnapshot, dir: string, recursive: boolean): Array<RepoFile | { dir: string }> | undefined {
  const prefix = dir ? `${dir}/` : '';
  const out: Array<RepoFile | { dir: string }> = [];
  const seen = new Set<string>();
  for (const file of snapshot.files) {
    if (!file.path.startsWith(prefix)) continue;
    const rest = file.path.slice(prefix.length).split('/');
    for (let depth = 1; depth < rest.length && (recursive || depth === 1); depth++) {
      const path = prefix + rest.slice(0, depth).join('/');
      if (seen.has(path)) continue;
      seen.add(path);
      out.push({ dir: path });
    }
    if (recursive || rest.length === 1) out.push(file);
  }
  return out.length === 0 && dir !== '' ? undefined : out;
}

/** One page of a tree listing, from `offset`; the blob ids of its small files are read for it. */
export async function treePage(
  snapshot: RepoSnapshot,
  items: Array<RepoFile | { dir: string }>,
  offset: number,
  oids: BlobOids,
): Promise<TreeItem[]> {
  const page = items.slice(offset, offset + TREE_PAGE);
  const ids = await oids.ofAll(page.filter((i): i is RepoFile => !('dir' in i)));
  return page.map((item) => {
    if ('dir' in item) {
      // Not git's tree id (that would need every small file's bytes): a stable id of the folder at this revision.
      const oid = createHash('sha1').update(`${snapshot.revision}\0${item.dir}`).digest('hex');
      return { type: 'directory', path: item.dir, oid, size: 0 };
    }
    return {
      type: 'file',
      path: item.path,
      oid: ids.get(item) as string,
      size: item.entry.size,
      ...(item.lfs ? { lfs: lfsOf(item) } : {}),
    };
  });
}

/** A tree cursor: the offset of the next page, opaque to clients. */
export function encodeCursor(offset: number): string {
  return Buffer.from(String(offset)).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): number {
  if (cursor === undefined || cursor === '') return 0;
  const offset = Number(Buffer.from(cursor, 'base64url').toString());
  if (!Number.isSafeInteger(offset) || offset < 0) throw new HubError(400, undefined, 'Invalid cursor');
  return offset;
}

/** `GET /api/{models,datasets}/{repo}/refs`: `main` is the one branch. */
export function repoRefs(snapshot: RepoSnapshot) {
  return { branches: [{ name: 'main', ref: 'refs/heads/main', targetCommit: snapshot.revision }], converts: [], tags: [] };
}
