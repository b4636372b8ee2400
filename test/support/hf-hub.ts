import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendBytes, sendCdnError, sendError } from './hf-http.js';
import { type ApiContext, handleApi, type Route, repoKey } from './hf-hub-api.js';
import {
  type Commit,
  type FileSpec,
  fileObject,
  makeCommit,
  parseRepoKey,
  type Repo,
  type RepoAccess,
  type RepoFileObject,
  resolveRevision,
  validatePath,
} from './hf-repos.js';

/*
 * A Hugging Face Hub stand-in for tests: the read side of the Hub's HTTP API that
 * `huggingface_hub` (2.x) uses to find and download a repo, on two real loopback servers.
 *
 * What it serves (API host `url` = http://127.0.0.1:P):
 *   GET /api/{models|datasets}/{org}/{name}[/revision/{rev}]   repo info: id, sha, siblings
 *       (with size, blobId, lfs when `blobs=true`), lastModified, createdAt, private, gated, …;
 *       `expand=…` keeps only the listed properties, as the Hub does.
 *   GET /api/{models|datasets}/{org}/{name}/tree/{rev}[/{path}]?recursive=&expand=&cursor=
 *       tree entries ({type, oid, size, path, lfs?}, `lastCommit` with expand=true), `pageSize`
 *       a page, the next page in `Link: <…>; rel="next"`.
 *   GET /api/{models|datasets}/{org}/{name}/refs                 branches (no tags, no PR refs).
 *   GET /api/agent-harnesses   an empty list (the `hf` CLI asks for it).
 *   HEAD|GET /{org}/{name}/resolve/{rev}/{path}, /datasets/{org}/{name}/resolve/…
 *       small file: 200 (206 with Range), `ETag: "<git blob id>"`, `X-Repo-Commit`.
 *       LFS file: 302 to the CDN host with `X-Linked-Etag: "<sha256>"`, `X-Linked-Size`,
 *       `X-Repo-Commit` and `ETag: "<pointer blob id>"`.
 *   `{rev}` is a branch name or a full 40-hex commit id (percent-encoded, as the client sends it).
 *   Blob, tree and commit ids are git's (hf-repos.ts; hf-standin-http.test.ts checks them
 *   against git itself).
 * CDN host `cdnUrl` = http://localhost:Q (another host name on purpose, see below): LFS bytes at
 *   a signed URL `/repos/<repo hash>/<sha256>?expires=<ms>&sig=<hmac>`; an expired or wrong
 *   signature is 403; `Accept-Ranges: bytes`, single ranges answered 206.
 *
 * What the client relies on (read in huggingface_hub 2.0.0's source):
 *   - snapshot_download: repo info's `sha` (skipped when the revision is already a 40-hex id)
 *     → `list_repo_tree(recursive=True, revision=sha)` following `Link` rel="next"
 *     (utils/_pagination.py) → for each file a HEAD /resolve/<sha>/<path> (file_download.py,
 *     get_hf_file_metadata) reading `X-Repo-Commit` (required), `X-Linked-Etag` or else `ETag`
 *     (required; it names the blob in the cache), `X-Linked-Size` or, when not redirected,
 *     `Content-Length`.
 *   - HEAD follows a redirect only to the same host or a Hub host (utils/_http.py,
 *     _httpx2_follow_hub_redirects_with_backoff); a redirect elsewhere is returned as it is,
 *     so the metadata must be on the 302, and the GET then goes straight to its Location
 *     without the Authorization header. Hence the CDN's other host name (`localhost`; it
 *     resolves to 127.0.0.1 here, and a client that tries ::1 first falls back).
 *   - Without `X-Xet-Hash` on the HEAD answer the client downloads over plain HTTP; with
 *     HF_HUB_DISABLE_XET=1 it never tries Xet.
 *   - Errors map from `X-Error-Code` (utils/_http.py, hf_raise_for_status): RepoNotFound →
 *     RepositoryNotFoundError, RevisionNotFound → RevisionNotFoundError, EntryNotFound →
 *     RemoteEntryNotFoundError, GatedRepo → GatedRepoError (401 without a token, 403 with a
 *     token not granted). A 401 with `X-Error-Message: Invalid credentials in Authorization
 *     header` stays a plain HfHubHTTPError. Like the Hub, a missing repo and a private repo
 *     the caller may not read answer the same: 401 without a token, 404 with one.
 *   - The download checks only the size it was told; it never hashes what it received (see
 *     the corrupt() hook and the test that shows it). `verify_repo_checksums` hashes.
 *
 * Where it differs from the real Hub: repos live in memory and are named `org/name` only (no
 * single-segment legacy ids, no renames or case-insensitive redirects); no tags, PR refs or
 * short commit ids; no Xet (no `X-Xet-Hash`, no xetHash in trees); no gzip; no spaces, users,
 * search, upload or write API; the tree listing is in git's order; `lastCommit` but no
 * `securityFileStatus` with expand=true; one `pageSize` for every listing, and its cursor is an
 * offset into the listing of the revision asked for (page by commit id, as snapshot_download
 * does, or a branch that moves between pages may repeat or skip entries); the LFS threshold is
 * an option (the Hub's is 10 MiB plus .gitattributes rules); the `ETag` on an LFS file's 302 is
 * its pointer's blob id (the Hub's may differ; clients read `X-Linked-Etag` first).
 */

export type { Route };

export interface HubStandInOptions {
  /** Files larger than this are LFS files (unless a file says otherwise). Default 10 MiB. */
  lfsThreshold?: number;
  /** Tree entries per page. Default 1000. */
  pageSize?: number;
  /** Tokens the Hub knows; any other bearer token is rejected as invalid credentials. */
  tokens?: string[];
  /** How long a CDN URL handed out by resolve stays valid. Default 1 h. */
  signedUrlTtlMs?: number;
  /** The stand-in's clock (ms), for signed URL expiry and default commit dates. */
  now?: () => number;
}

export interface RequestRecord {
  host: 'api' | 'cdn';
  route: Route;
  method: string;
  path: string;
  status: number;
}

export interface HubRequests {
  info: number;
  tree: number;
  refs: number;
  resolveHead: number;
  resolveGet: number;
  cdnHead: number;
  cdnGet: number;
  /** Hub-wide lists the client asks for (GET /api/agent-harnesses). */
  meta: number;
  /** Requests no route took (404 or 405 without an error code). */
  other: number;
  /** File bytes sent by the API host (small files) and by the CDN (LFS files). */
  resolveBytes: number;
  cdnBytes: number;
  log: RequestRecord[];
}

export interface RepoInit extends RepoAccess {
  files: Record<string, FileSpec>;
  message?: string;
  date?: Date;
}

export interface CommitInit {
  /** Path → new bytes, or null to delete the file. */
  files: Record<string, FileSpec | null>;
  /** Default `main`; a branch that does not exist yet starts from main. */
  branch?: string;
  message?: string;
  date?: Date;
}

export interface HubStandIn {
  /** The API host, for HF_ENDPOINT. */
  url: string;
  /** The CDN host LFS downloads are redirected to. */
  cdnUrl: string;
  requests: HubRequests;
  resetRequests(): void;
  /** Create (or replace, with a fresh history) a repo `org/name` or `datasets/org/name` with one commit on main. */
  setRepo(key: string, init: RepoInit): string;
  /** A new commit on a branch; returns its id. */
  commit(key: string, init: CommitInit): string;
  /** Commit id a branch (default main) points at. */
  head(key: string, branch?: string): string;
  /** From now on serve `path` (as of `revision`, default main) with one byte flipped, still advertising its true hashes. */
  corrupt(key: string, path: string, options?: { revision?: string; offset?: number }): void;
  /** Serve every file right again. */
  heal(): void;
  close(): Promise<void>;
}

function emptyRequests(): HubRequests {
  return {
    info: 0,
    tree: 0,
    refs: 0,
    resolveHead: 0,
    resolveGet: 0,
    cdnHead: 0,
    cdnGet: 0,
    meta: 0,
    other: 0,
    resolveBytes: 0,
    cdnBytes: 0,
    log: [],
  };
}

export async function startHubStandIn(options: HubStandInOptions = {}): Promise<HubStandIn> {
  const lfsThreshold = options.lfsThreshold ?? 10 * 1024 * 1024;
  const pageSize = options.pageSize ?? 1000;
  const tokens = new Set(options.tokens ?? []);
  const ttl = options.signedUrlTtlMs ?? 3_600_000;
  const now = options.now ?? Date.now;
  const secret = randomBytes(32);
  const repos = new Map<string, Repo>();
  const lfsObjects = new Map<string, Buffer>();
  const faults = new Map<string, number>();
  let requests = emptyRequests();

  const getRepo = (key: string): Repo => {
    const { kind, id } = parseRepoKey(key);
    const repo = repos.get(repoKey(kind, id));
    if (!repo) throw new Error(`hub stand-in: no repo ${key}`);
    return repo;
  };

  function addCommit(repo: Repo, files: Map<string, RepoFileObject>, parent: string | undefined, message: string, date: Date): Commit {
    const commit = makeCommit(files, parent, message, date);
    repo.commits.set(commit.id, commit);
    for (const f of files.values()) if (f.lfs) lfsObjects.set(f.lfs.oid, f.bytes);
    return commit;
  }

  function servedBytes(bytes: Buffer, objectId: string): Buffer {
    const offset = faults.get(objectId);
    if (offset === undefined) return bytes;
    const copy = Buffer.from(bytes);
    copy[offset] = (copy[offset] as number) ^ 0xff;
    return copy;
  }

  function sign(pathname: string, expires: number): string {
    return createHmac('sha256', secret).update(`${pathname}\n${expires}`).digest('hex');
  }

  // ---- CDN host -------------------------------------------------------------------------

  function handleCdn(req: IncomingMessage, res: ServerResponse, record: (route: Route) => void): void {
    const u = new URL(req.url ?? '/', 'http://stand-in');
    const m = /^\/repos\/[0-9a-f]{16}\/([0-9a-f]{64})$/.exec(u.pathname);
    if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) {
      record('other');
      sendCdnError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      return;
    }
    record('cdn');
    const expires = Number(u.searchParams.get('expires'));
    const sig = Buffer.from(u.searchParams.get('sig') ?? '', 'hex');
    const want = Buffer.from(sign(u.pathname, expires), 'hex');
    if (!Number.isFinite(expires) || sig.length !== want.length || !timingSafeEqual(sig, want)) {
      sendCdnError(res, 403, 'AccessDenied', 'Signature does not match');
      return;
    }
    if (now() > expires) {
      sendCdnError(res, 403, 'AccessDenied', 'Request has expired');
      return;
    }
    const sha256 = m[1] as string;
    const bytes = lfsObjects.get(sha256);
    if (!bytes) {
      sendCdnError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      return;
    }
    res.setHeader('ETag', `"${sha256}"`);
    requests.cdnBytes += sendBytes(req, res, servedBytes(bytes, sha256));
  }

  // ---- servers --------------------------------------------------------------------------

  type Handler = (req: IncomingMessage, res: ServerResponse, record: (route: Route) => void) => void;

  function serve(host: 'api' | 'cdn', handler: Handler): Server {
    return createServer((req, res) => {
      let route: Route = 'other';
      const record = (r: Route) => {
        route = r;
      };
      res.on('finish', () => {
        const head = req.method === 'HEAD';
        if (route === 'resolve') requests[head ? 'resolveHead' : 'resolveGet']++;
        else if (route === 'cdn') requests[head ? 'cdnHead' : 'cdnGet']++;
        else requests[route]++;
        requests.log.push({ host, route, method: req.method ?? '', path: req.url ?? '', status: res.statusCode });
      });
      try {
        handler(req, res, record);
      } catch (err) {
        if (err instanceof URIError) {
          sendError(res, 400, undefined, 'Bad percent-encoding in URL');
          return;
        }
        sendError(res, 500, undefined, `hub stand-in: ${(err as Error).stack ?? err}`);
      }
    });
  }

  const ctx: ApiContext = {
    repos,
    tokens,
    pageSize,
    apiUrl: '',
    lfsLocation(key, sha256) {
      const pathname = `/repos/${createHash('sha256').update(key).digest('hex').slice(0, 16)}/${sha256}`;
      const expires = now() + ttl;
      return `${cdnUrl}${pathname}?expires=${expires}&sig=${sign(pathname, expires)}`;
    },
    servedBytes,
    countResolveBytes(n) {
      requests.resolveBytes += n;
    },
  };
  const api = serve('api', (req, res, record) => handleApi(ctx, req, res, record));
  const cdn = serve('cdn', handleCdn);
  const listen = (server: Server) =>
    new Promise<number>((ok, fail) => {
      server.once('error', fail);
      server.listen(0, '127.0.0.1', () => ok((server.address() as AddressInfo).port));
    });
  const apiUrl = `http://127.0.0.1:${await listen(api)}`;
  const cdnUrl = `http://localhost:${await listen(cdn)}`;
  ctx.apiUrl = apiUrl;

  return {
    url: apiUrl,
    cdnUrl,
    get requests() {
      return requests;
    },
    resetRequests() {
      requests = emptyRequests();
    },
    setRepo(key, init) {
      const { kind, id } = parseRepoKey(key);
      const date = init.date ?? new Date(now());
      const repo: Repo = {
        kind,
        id,
        private: init.private ?? false,
        gated: init.gated ?? false,
        grants: new Set(init.grants ?? []),
        branches: new Map(),
        commits: new Map(),
        createdAt: date,
      };
      const files = new Map<string, RepoFileObject>();
      for (const [path, spec] of Object.entries(init.files)) {
        validatePath(path);
        files.set(path, fileObject(path, spec, lfsThreshold));
      }
      const commit = addCommit(repo, files, undefined, init.message ?? 'initial commit', date);
      repo.branches.set('main', commit.id);
      repos.set(repoKey(kind, id), repo);
      return commit.id;
    },
    commit(key, init) {
      const repo = getRepo(key);
      const branch = init.branch ?? 'main';
      const parentId = repo.branches.get(branch) ?? (repo.branches.get('main') as string);
      const parent = repo.commits.get(parentId) as Commit;
      const files = new Map(parent.files);
      for (const [path, spec] of Object.entries(init.files)) {
        validatePath(path);
        if (spec === null) files.delete(path);
        else files.set(path, fileObject(path, spec, lfsThreshold));
      }
      const commit = addCommit(repo, files, parent.id, init.message ?? 'update', init.date ?? new Date(now()));
      repo.branches.set(branch, commit.id);
      return commit.id;
    },
    head(key, branch = 'main') {
      const id = getRepo(key).branches.get(branch);
      if (!id) throw new Error(`hub stand-in: ${key} has no branch ${branch}`);
      return id;
    },
    corrupt(key, path, opts = {}) {
      const repo = getRepo(key);
      const commit = resolveRevision(repo, opts.revision ?? 'main');
      const file = commit?.files.get(path);
      if (!file) throw new Error(`hub stand-in: ${key} has no ${path} at ${opts.revision ?? 'main'}`);
      const offset = opts.offset ?? 0;
      if (offset < 0 || offset >= file.size) throw new Error(`hub stand-in: offset ${offset} outside ${path} (${file.size} bytes)`);
      faults.set(file.lfs?.oid ?? file.oid, offset);
    },
    heal() {
      faults.clear();
    },
    async close() {
      for (const server of [api, cdn]) {
        server.closeAllConnections();
        await new Promise<void>((ok) => server.close(() => ok()));
      }
    },
  };
}
