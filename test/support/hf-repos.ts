import { createHash } from 'node:crypto';

/*
 * The repositories of the Hub stand-in (hf-hub.ts): files, commits and branches, with the ids
 * git gives them, so that what the stand-in advertises can be checked against `git` itself.
 *
 * - A small file is a git blob: its id (the tree entry's `oid`, its resolve `ETag`) is
 *   sha1("blob <len>\0" + bytes).
 * - A large file (over the threshold, or marked `lfs`) is stored in git as an LFS pointer, as
 *   git-lfs writes it: its tree entry's `oid` is the pointer's blob id, `size` the file's size,
 *   `lfs: { oid: <sha256 of the bytes>, size, pointerSize }`.
 * - Folders are git trees and a commit is a git commit object (tree, parent, author and
 *   committer at the commit's date in whole seconds, message), so commit ids are computed like
 *   git's, never random: the same files, parent, date and message give the same id.
 */

export type RepoKind = 'model' | 'dataset';

/** A file as a test gives it: bytes (or text), optionally forced in or out of LFS. */
export type FileSpec = Buffer | string | { bytes: Buffer | string; lfs?: boolean };

export interface LfsInfo {
  /** sha256 of the file's bytes (hex). */
  oid: string;
  size: number;
  pointerSize: number;
}

export interface RepoFileObject {
  path: string;
  bytes: Buffer;
  /** Git blob id of what git stores: the bytes, or the LFS pointer. */
  oid: string;
  size: number;
  lfs?: LfsInfo;
}

export interface Commit {
  id: string;
  parent?: string;
  treeId: string;
  message: string;
  date: Date;
  /** Repo path → file, in git order. */
  files: Map<string, RepoFileObject>;
  /** Folder path ('' for the root) → tree id. */
  trees: Map<string, string>;
}

export interface TreeEntry {
  type: 'file' | 'directory';
  path: string;
  oid: string;
  size: number;
  lfs?: LfsInfo;
}

export const AUTHOR = 'Ferry Test <test@ferry.invalid>';

export function gitObjectId(type: 'blob' | 'tree' | 'commit', body: Buffer): string {
  return createHash('sha1').update(`${type} ${body.length}\0`).update(body).digest('hex');
}

export function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

export function fileObject(path: string, spec: FileSpec, lfsThreshold: number): RepoFileObject {
  const raw = Buffer.isBuffer(spec) || typeof spec === 'string' ? spec : spec.bytes;
  const bytes = typeof raw === 'string' ? Buffer.from(raw) : raw;
  const forced = Buffer.isBuffer(spec) || typeof spec === 'string' ? undefined : spec.lfs;
  const isLfs = forced ?? bytes.length > lfsThreshold;
  if (!isLfs) return { path, bytes, oid: gitObjectId('blob', bytes), size: bytes.length };
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const pointer = lfsPointer(sha256, bytes.length);
  return {
    path,
    bytes,
    oid: gitObjectId('blob', pointer),
    size: bytes.length,
    lfs: { oid: sha256, size: bytes.length, pointerSize: pointer.length },
  };
}

/** Git's order of names in a tree: a folder sorts as if its name ended with '/'. */
function gitNameKey(name: string, isDir: boolean): string {
  return isDir ? `${name}/` : name;
}

function compareGit(a: { name: string; dir: boolean }, b: { name: string; dir: boolean }): number {
  const ka = Buffer.from(gitNameKey(a.name, a.dir));
  const kb = Buffer.from(gitNameKey(b.name, b.dir));
  return Buffer.compare(ka, kb);
}

interface DirNode {
  files: Map<string, RepoFileObject>;
  dirs: Map<string, DirNode>;
}

function buildDirs(files: Iterable<RepoFileObject>): DirNode {
  const root: DirNode = { files: new Map(), dirs: new Map() };
  for (const file of files) {
    const parts = file.path.split('/');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      let next = node.dirs.get(part);
      if (!next) {
        next = { files: new Map(), dirs: new Map() };
        node.dirs.set(part, next);
      }
      node = next;
    }
    node.files.set(parts[parts.length - 1] as string, file);
  }
  return root;
}

/** Writes tree ids of `node` and its folders into `trees`; returns the ordered file list. */
function hashTrees(node: DirNode, prefix: string, trees: Map<string, string>, ordered: RepoFileObject[]): string {
  const children = [
    ...[...node.files.keys()].map((name) => ({ name, dir: false })),
    ...[...node.dirs.keys()].map((name) => ({ name, dir: true })),
  ].sort(compareGit);
  const parts: Buffer[] = [];
  for (const child of children) {
    const path = prefix ? `${prefix}/${child.name}` : child.name;
    let oid: string;
    if (child.dir) {
      oid = hashTrees(node.dirs.get(child.name) as DirNode, path, trees, ordered);
    } else {
      const file = node.files.get(child.name) as RepoFileObject;
      ordered.push(file);
      oid = file.oid;
    }
    parts.push(Buffer.from(`${child.dir ? '40000' : '100644'} ${child.name}\0`), Buffer.from(oid, 'hex'));
  }
  const id = gitObjectId('tree', Buffer.concat(parts));
  trees.set(prefix, id);
  return id;
}

export function validatePath(path: string): void {
  const parts = path.split('/');
  if (!path || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new Error(`hub stand-in: bad file path ${JSON.stringify(path)}`);
  }
}

export function makeCommit(files: Map<string, RepoFileObject>, parent: string | undefined, message: string, date: Date): Commit {
  const trees = new Map<string, string>();
  const ordered: RepoFileObject[] = [];
  const treeId = hashTrees(buildDirs(files.values()), '', trees, ordered);
  const seconds = Math.floor(date.getTime() / 1000);
  const body = Buffer.from(
    `tree ${treeId}\n${parent ? `parent ${parent}\n` : ''}author ${AUTHOR} ${seconds} +0000\ncommitter ${AUTHOR} ${seconds} +0000\n\n${message}\n`,
  );
  return {
    id: gitObjectId('commit', body),
    ...(parent ? { parent } : {}),
    treeId,
    message,
    date: new Date(seconds * 1000),
    files: new Map(ordered.map((f) => [f.path, f])),
    trees,
  };
}

/**
 * The tree listing of `dir` ('' for the root) at a commit, in git's order (`git ls-tree -t`,
 * with `-r` when recursive): folders as `directory` entries before what they hold. `undefined`
 * when `dir` is not a folder of the commit.
 */
export function listTree(commit: Commit, dir: string, recursive: boolean): TreeEntry[] | undefined {
  if (!commit.trees.has(dir)) return undefined;
  const out: TreeEntry[] = [];
  const seen = new Set<string>();
  const prefix = dir ? `${dir}/` : '';
  for (const file of commit.files.values()) {
    if (!file.path.startsWith(prefix)) continue;
    const rest = file.path.slice(prefix.length).split('/');
    // Folders between `dir` and the file, each listed once, before their first file.
    for (let depth = 1; depth < rest.length && (recursive || depth === 1); depth++) {
      const path = prefix + rest.slice(0, depth).join('/');
      if (seen.has(path)) continue;
      seen.add(path);
      out.push({ type: 'directory', path, oid: commit.trees.get(path) as string, size: 0 });
    }
    if (recursive || rest.length === 1) {
      out.push({ type: 'file', path: file.path, oid: file.oid, size: file.size, ...(file.lfs ? { lfs: file.lfs } : {}) });
    }
  }
  return out;
}

export interface RepoAccess {
  private?: boolean;
  /** How the Hub shows a gated repo: `'auto'` or `'manual'` approval; false when not gated. */
  gated?: false | 'auto' | 'manual';
  /** Tokens that may read the repo's files when it is private or gated. */
  grants?: string[];
}

export interface Repo {
  kind: RepoKind;
  /** `org/name`, as clients name it. */
  id: string;
  private: boolean;
  gated: false | 'auto' | 'manual';
  grants: Set<string>;
  /** Branch name → commit id. */
  branches: Map<string, string>;
  commits: Map<string, Commit>;
  createdAt: Date;
}

const FULL_SHA = /^[0-9a-f]{40}$/;

/** A branch name or a full 40-hex commit id, as the stand-in resolves revisions. */
export function resolveRevision(repo: Repo, revision: string): Commit | undefined {
  const id = repo.branches.get(revision) ?? (FULL_SHA.test(revision) ? revision : undefined);
  return id === undefined ? undefined : repo.commits.get(id);
}

/** The oldest commit, going back from `commit`, since which `path` has stayed the same. */
export function lastCommitFor(repo: Repo, commit: Commit, path: string): Commit {
  const idAt = (c: Commit) => c.files.get(path)?.oid ?? c.trees.get(path);
  const id = idAt(commit);
  let current = commit;
  for (;;) {
    const parent = current.parent === undefined ? undefined : repo.commits.get(current.parent);
    if (!parent || idAt(parent) !== id) return current;
    current = parent;
  }
}

/**
 * A repo key as tests name repos: `org/name` for a model, `datasets/org/name` for a dataset
 * (the Hub's URL form, and the folder form under Ferry's hub root).
 */
export function parseRepoKey(key: string): { kind: RepoKind; id: string } {
  const m = /^(?:(datasets)\/)?([\w.-]+\/[\w.-]+)$/.exec(key);
  if (!m) throw new Error(`hub stand-in: repo key must be org/name or datasets/org/name, got ${JSON.stringify(key)}`);
  return { kind: m[1] ? 'dataset' : 'model', id: m[2] as string };
}
