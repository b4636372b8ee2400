import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decode, sendBytes, sendError, sendJson } from './hf-http.js';
import { type Commit, lastCommitFor, listTree, type Repo, type RepoKind, resolveRevision } from './hf-repos.js';

// The API host of the Hub stand-in (hf-hub.ts): repo info, tree, refs and resolve, behind the
// Hub's access rules for private and gated repos.

export type Route = 'info' | 'tree' | 'refs' | 'resolve' | 'cdn' | 'meta' | 'other';

export interface ApiContext {
  /** Repo key (`org/name`, `datasets/org/name`) → repo. */
  repos: Map<string, Repo>;
  /** Tokens the Hub knows. */
  tokens: Set<string>;
  pageSize: number;
  apiUrl: string;
  /** A signed CDN URL, valid for a while, for an LFS object of a repo. */
  lfsLocation(repoKey: string, sha256: string): string;
  /** The bytes to send for a stored object (one byte flipped when a test asked for it). */
  servedBytes(bytes: Buffer, objectId: string): Buffer;
  countResolveBytes(n: number): void;
}

export function repoKey(kind: RepoKind, id: string): string {
  return kind === 'dataset' ? `datasets/${id}` : id;
}

export function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, record: (route: Route) => void): void {
  const u = new URL(req.url ?? '/', 'http://stand-in');
  const segs = u.pathname.split('/').slice(1);
  res.setHeader('X-Request-Id', randomUUID());
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    record('other');
    sendError(res, 405, undefined, 'Method not allowed');
    return;
  }
  if (u.pathname === '/api/agent-harnesses') {
    // The `hf` CLI asks for this list once a day to tell whether a coding agent runs it; an
    // empty one means "never", so its output does not depend on the caller's environment.
    record('meta');
    sendJson(res, 200, { standardEnvVars: [], harnesses: {} });
    return;
  }
  if (segs[0] === 'api' && (segs[1] === 'models' || segs[1] === 'datasets') && segs.length >= 4) {
    const kind: RepoKind = segs[1] === 'models' ? 'model' : 'dataset';
    const id = `${decode(segs[2])}/${decode(segs[3])}`;
    const rest = segs.slice(4);
    if (rest.length === 0 || (rest[0] === 'revision' && rest.length >= 2)) {
      record('info');
      const revision = rest.length === 0 ? 'main' : decode(rest.slice(1).join('/'));
      info({ ctx, req, res }, { kind, id, revision, files: false }, u.searchParams);
      return;
    }
    if (rest[0] === 'tree' && rest.length >= 2) {
      record('tree');
      const dir = decode(rest.slice(2).join('/')).replace(/\/+$/, '');
      tree({ ctx, req, res }, { kind, id, revision: decode(rest[1]), files: false }, dir, u);
      return;
    }
    if (rest[0] === 'refs' && rest.length === 1) {
      record('refs');
      refs(ctx, req, res, kind, id);
      return;
    }
  }
  const resolveAt = segs[0] === 'datasets' ? 1 : 0;
  if (segs[resolveAt + 2] === 'resolve' && segs.length >= resolveAt + 5) {
    const kind: RepoKind = resolveAt === 1 ? 'dataset' : 'model';
    const id = `${decode(segs[resolveAt])}/${decode(segs[resolveAt + 1])}`;
    record('resolve');
    resolve(
      { ctx, req, res },
      { kind, id, revision: decode(segs[resolveAt + 3]), files: true },
      decode(segs.slice(resolveAt + 4).join('/')),
    );
    return;
  }
  record('other');
  sendError(res, 404, undefined, 'Not found');
}

/** The repo if the caller may see it (and read its files, with `files`); otherwise the Hub's error is sent. */
function access(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, kind: RepoKind, id: string, files: boolean): Repo | undefined {
  const header = req.headers.authorization;
  let token: string | undefined;
  if (header !== undefined) {
    token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (token === undefined || !ctx.tokens.has(token)) {
      sendError(res, 401, undefined, 'Invalid credentials in Authorization header');
      return undefined;
    }
  }
  const repo = ctx.repos.get(repoKey(kind, id));
  const granted = token !== undefined && (repo?.grants.has(token) ?? false);
  if (!repo || (repo.private && !granted)) {
    if (token === undefined) sendError(res, 401, 'RepoNotFound', 'Invalid username or password.');
    else sendError(res, 404, 'RepoNotFound', 'Repository not found');
    return undefined;
  }
  if (files && repo.gated && !granted) {
    const what = `${kind} ${id}`;
    if (token === undefined) {
      sendError(
        res,
        401,
        'GatedRepo',
        `Access to ${what} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      );
    } else {
      const page = `${ctx.apiUrl}/${kind === 'dataset' ? 'datasets/' : ''}${id}`;
      sendError(
        res,
        403,
        'GatedRepo',
        `Access to ${what} is restricted and you are not in the authorized list. Visit ${page} to ask for access.`,
      );
    }
    return undefined;
  }
  return repo;
}

function revisionOf(res: ServerResponse, repo: Repo, revision: string): Commit | undefined {
  const commit = resolveRevision(repo, revision);
  if (!commit) sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
  return commit;
}

/** The commit a request names, when the caller may see the repo (`files`: its files too); else the error was answered. */
function commitOf(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  at: { kind: RepoKind; id: string; revision: string; files: boolean },
): { repo: Repo; commit: Commit } | undefined {
  const repo = access(ctx, req, res, at.kind, at.id, at.files);
  const commit = repo && revisionOf(res, repo, at.revision);
  return repo && commit ? { repo, commit } : undefined;
}

/** One API request: the server's context and the request and response. */
interface Exchange {
  ctx: ApiContext;
  req: IncomingMessage;
  res: ServerResponse;
}

/** The repo and revision a request names, and whether it reads files (which gated repos guard too). */
interface RepoAt {
  kind: RepoKind;
  id: string;
  revision: string;
  files: boolean;
}

function info({ ctx, req, res }: Exchange, at: RepoAt, query: URLSearchParams): void {
  const { kind, id } = at;
  const found = commitOf(ctx, req, res, at);
  if (!found) return;
  const { repo, commit } = found;
  const blobs = query.get('blobs') === 'true';
  const siblings = [...commit.files.values()].map((f) =>
    blobs
      ? {
          rfilename: f.path,
          size: f.size,
          blobId: f.oid,
          ...(f.lfs ? { lfs: { sha256: f.lfs.oid, size: f.lfs.size, pointerSize: f.lfs.pointerSize } } : {}),
        }
      : { rfilename: f.path },
  );
  const stored = new Map<string, number>();
  for (const c of repo.commits.values()) for (const f of c.files.values()) stored.set(f.lfs?.oid ?? f.oid, f.size);
  const body: Record<string, unknown> = {
    _id: createHash('sha1').update(`${kind}:${id}`).digest('hex').slice(0, 24),
    id,
    ...(kind === 'model' ? { modelId: id } : {}),
    author: id.split('/')[0],
    sha: commit.id,
    lastModified: commit.date.toISOString(),
    createdAt: repo.createdAt.toISOString(),
    private: repo.private,
    gated: repo.gated,
    disabled: false,
    downloads: 0,
    likes: 0,
    tags: [],
    siblings,
    usedStorage: [...stored.values()].reduce((a, b) => a + b, 0),
  };
  const expand = [...query.getAll('expand'), ...query.getAll('expand[]')];
  if (expand.length > 0) {
    for (const key of Object.keys(body)) if (key !== '_id' && key !== 'id' && !expand.includes(key)) delete body[key];
  }
  sendJson(res, 200, body);
}

function tree({ ctx, req, res }: Exchange, at: RepoAt, dir: string, u: URL): void {
  const { revision } = at;
  const found = commitOf(ctx, req, res, at);
  if (!found) return;
  const { repo, commit } = found;
  const listing = listTree(commit, dir, u.searchParams.get('recursive') === 'true');
  if (!listing) {
    res.setHeader('X-Repo-Commit', commit.id);
    sendError(res, 404, 'EntryNotFound', `${dir} does not exist on "${revision}"`);
    return;
  }
  const cursor = u.searchParams.get('cursor');
  const offset = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) : 0;
  if (!Number.isInteger(offset) || offset < 0) {
    sendError(res, 400, undefined, 'Invalid cursor');
    return;
  }
  const expand = u.searchParams.get('expand') === 'true';
  const page = listing.slice(offset, offset + ctx.pageSize).map((entry) => {
    if (!expand) return entry;
    const last = lastCommitFor(repo, commit, entry.path);
    return { ...entry, lastCommit: { id: last.id, title: last.message.split('\n')[0], date: last.date.toISOString() } };
  });
  if (offset + ctx.pageSize < listing.length) {
    const next = new URLSearchParams(u.searchParams);
    next.set('cursor', Buffer.from(String(offset + ctx.pageSize)).toString('base64url'));
    res.setHeader('Link', `<${ctx.apiUrl}${u.pathname}?${next}>; rel="next"`);
  }
  sendJson(res, 200, page);
}

function refs(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, kind: RepoKind, id: string): void {
  const repo = access(ctx, req, res, kind, id, false);
  if (!repo) return;
  const branches = [...repo.branches].map(([name, target]) => ({ name, ref: `refs/heads/${name}`, targetCommit: target }));
  sendJson(res, 200, { branches, converts: [], tags: [] });
}

function resolve({ ctx, req, res }: Exchange, at: RepoAt, path: string): void {
  const { kind, id } = at;
  const found = commitOf(ctx, req, res, at);
  if (!found) return;
  const { commit } = found;
  res.setHeader('X-Repo-Commit', commit.id);
  const file = commit.files.get(path);
  if (!file) {
    sendError(res, 404, 'EntryNotFound', 'Entry not found');
    return;
  }
  res.setHeader('ETag', `"${file.oid}"`);
  if (file.lfs) {
    res.writeHead(302, {
      Location: ctx.lfsLocation(repoKey(kind, id), file.lfs.oid),
      'X-Linked-Etag': `"${file.lfs.oid}"`,
      'X-Linked-Size': String(file.lfs.size),
      'Content-Length': '0',
    });
    res.end();
    return;
  }
  ctx.countResolveBytes(sendBytes(req, res, ctx.servedBytes(file.bytes, file.oid)));
}
