import { type Logger, silentLogger } from '@ferry/core';
import { Revisions } from '@ferry/meta';
import type { RegionReader } from '@ferry/reader';
import { hasBearer, InFlightBudget, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeCursor, encodeCursor, repoInfo, repoRefs, TREE_PAGE, treeListing, treePage } from './api.js';
import { Claims } from './claims.js';
import { entryNotFound, HubError, repoNotFound, revisionNotFound } from './errors.js';
import { createMetrics, type HubMetrics } from './metrics.js';
import { BlobOids } from './oids.js';
import { type RepoKind, type RepoRef, repoFolder, repoLabel, repoRef } from './repos.js';
import { logRequests, type Served, sendError, sendFile } from './responses.js';
import { type RepoSnapshot, Snapshots } from './snapshots.js';

export interface HubOptions {
  volume: string;
  region: string;
  reader: RegionReader;
  /** The folder whose repos are served (`hub.root`). */
  root: string;
  /** Files of at least this size are LFS files. */
  lfsThreshold: number;
  /** The bearer token clients must send (`HF_TOKEN`); required unless `anonymous`. */
  readToken?: string;
  anonymous?: boolean;
  /** Bearer token for `/-/metrics` besides the read token. */
  metricsToken?: string;
  health?: () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;
  metrics?: HubMetrics;
  logger?: Logger;
  tls?: ServerTlsFiles;
  limits: ServerLimits & { maxStreams: number; maxBytesInFlight: number };
  budget?: InFlightBudget;
  /** How long `main` of a repo is answered from one listing (default 1 s). */
  freshMs?: number;
}

const KINDS: Record<string, RepoKind> = { models: 'model', datasets: 'dataset' };
const REVISION = /^(main|[0-9a-f]{40})$/;

/**
 * The Hugging Face Hub's read API over one region's repos: what `snapshot_download`,
 * `hf_hub_download`, `model_info`, `list_repo_files`/`list_repo_tree` and `from_pretrained`
 * call. `build` returns the app without listening.
 */
export function build(options: HubOptions): FastifyInstance {
  const anonymous = options.anonymous ?? false;
  if (!anonymous && !options.readToken)
    throw new Error('hub: configure hub.readToken, or set hub.anonymous: true to serve without a token');
  const { reader, root, volume, region } = options;
  const log = options.logger ?? silentLogger;
  const budget = options.budget ?? new InFlightBudget({ maxStreams: options.limits.maxStreams, maxBytes: options.limits.maxBytesInFlight });
  const metrics = options.metrics ?? createMetrics({ volume, region, tiers: reader.chunks, inflight: budget });
  const revisions = new Revisions(reader.meta);
  const snapshots = new Snapshots({
    list: (dir, o) => reader.meta.list(dir, o),
    aliases: (folder) => revisions.aliases(folder),
    lfsThreshold: options.lfsThreshold,
    ...(options.freshMs !== undefined ? { freshMs: options.freshMs } : {}),
  });
  const oids = new BlobOids((entry) => reader.read(entry, 0, entry.size));
  const claims = new Claims({ reader, logger: log, onRefused: () => metrics.claimsRefused.inc() });
  // Fastify's own logging stays off: one JSON line per request is written below, without tokens.
  const app = serviceApp({
    ...(options.tls ? { tls: options.tls } : {}),
    limits: options.limits,
    log,
    logger: false,
    exposeHeadRoutes: false,
  });

  logRequests(app, metrics, log);
  app.setErrorHandler((err, req, reply) => sendError(req, reply, err));
  const served: Served = { reader, budget, metrics, log };
  app.setNotFoundHandler((req, reply) => sendError(req, reply, new HubError(404, undefined, 'Not Found')));

  function authorize(req: FastifyRequest): void {
    if (anonymous && req.headers.authorization === undefined) return;
    if (!hasBearer(req, options.readToken)) {
      throw new HubError(401, undefined, 'Invalid credentials in Authorization header: this hub needs its read token (HF_TOKEN)');
    }
  }

  /** The repo a request names and its files at the revision it asks for; the Hub's 404s otherwise. */
  async function resolveRepo(
    kind: string | undefined,
    org: string,
    name: string,
    revision: string,
  ): Promise<{ repo: RepoRef; snapshot: RepoSnapshot }> {
    const k = kind === undefined ? undefined : KINDS[kind];
    const repo = k ? repoRef(k, org, name) : undefined;
    if (!repo) throw repoNotFound(`${kind ?? ''}/${org}/${name}`);
    if (!REVISION.test(revision)) {
      const found = await snapshots.at(repoFolder(root, repo), 'main');
      throw found.repo ? revisionNotFound(revision) : repoNotFound(repoLabel(repo));
    }
    const found = await snapshots.at(repoFolder(root, repo), revision);
    if (!found.repo) throw repoNotFound(repoLabel(repo));
    if (!found.snapshot) throw revisionNotFound(revision);
    return { repo, snapshot: found.snapshot };
  }

  type Params = { kind?: string; org: string; name: string; '*'?: string };

  app.get('/-/healthz', async (req, reply) => {
    req.hub.route = 'health';
    const health = (await options.health?.()) ?? { ok: true };
    return reply.code(health.ok ? 200 : 503).send(health);
  });
  app.get('/-/metrics', async (req, reply) => {
    req.hub.route = 'metrics';
    if (!anonymous && !hasBearer(req, options.metricsToken) && !hasBearer(req, options.readToken)) {
      throw new HubError(401, undefined, 'metrics need the metrics token or the read token');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  const info = async (req: FastifyRequest<{ Params: Params; Querystring: Record<string, string | string[]> }>, reply: FastifyReply) => {
    req.hub.route = 'info';
    authorize(req);
    const { kind, org, name } = req.params;
    const { repo, snapshot } = await resolveRepo(kind, org, name, req.params['*'] ?? 'main');
    const q = req.query;
    const expand = [q.expand, q['expand[]']].flat().filter((v): v is string => typeof v === 'string');
    return reply.send(await repoInfo(repo, snapshot, { blobs: q.blobs === 'true', expand }, oids));
  };
  app.get('/api/:kind/:org/:name', info);
  app.get('/api/:kind/:org/:name/revision/*', info);

  app.get('/api/:kind/:org/:name/refs', async (req: FastifyRequest<{ Params: Params }>, reply) => {
    req.hub.route = 'refs';
    authorize(req);
    const { kind, org, name } = req.params;
    return reply.send(repoRefs((await resolveRepo(kind, org, name, 'main')).snapshot));
  });

  app.get('/api/:kind/:org/:name/tree/*', async (req: FastifyRequest<{ Params: Params; Querystring: Record<string, string> }>, reply) => {
    req.hub.route = 'tree';
    authorize(req);
    const { kind, org, name } = req.params;
    const { revision, path } = revisionAndPath(req.params['*']);
    const dir = path.replace(/\/+$/, '');
    const { snapshot } = await resolveRepo(kind, org, name, revision);
    reply.header('x-repo-commit', snapshot.revision);
    const items = treeListing(snapshot, dir, req.query.recursive === 'true' || req.query.recursive === '1');
    if (!items) throw entryNotFound(dir, revision);
    const offset = decodeCursor(req.query.cursor);
    if (offset + TREE_PAGE < items.length) {
      const next = new URLSearchParams(req.query);
      next.set('cursor', encodeCursor(offset + TREE_PAGE));
      reply.header('link', `<${baseUrl(req)}${req.url.split('?')[0]}?${next}>; rel="next"`);
    }
    return reply.send(await treePage(snapshot, items, offset, oids));
  });

  const resolve = async (req: FastifyRequest<{ Params: Params }>, reply: FastifyReply, kind: string) => {
    req.hub.route = 'resolve';
    authorize(req);
    const { org, name } = req.params;
    const { revision, path } = revisionAndPath(req.params['*']);
    const { repo, snapshot } = await resolveRepo(kind, org, name, revision);
    reply.header('x-repo-commit', snapshot.revision);
    const file = snapshot.byPath.get(path);
    if (!file) throw entryNotFound(path, revision);
    const etag = `"${file.lfs ? file.content : await oids.of(file)}"`;
    reply.header('etag', etag).header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
    if (file.lfs) reply.header('x-linked-etag', etag).header('x-linked-size', String(file.entry.size));
    if (req.method === 'GET') await claims.confirm(file.entry, `${repoLabel(repo)} ${path}`);
    return sendFile(served, req, reply, file.entry);
  };
  for (const method of ['GET', 'HEAD'] as const) {
    app.route({
      method,
      url: '/:org/:name/resolve/*',
      handler: (req: FastifyRequest<{ Params: Params }>, reply) => resolve(req, reply, 'models'),
    });
    app.route({
      method,
      url: '/datasets/:org/:name/resolve/*',
      handler: (req: FastifyRequest<{ Params: Params }>, reply) => resolve(req, reply, 'datasets'),
    });
  }

  return app;
}

/** `{rev}/{path}` of a tree or resolve URL (a revision never holds a "/": only main and 40-hex ids are served). */
function revisionAndPath(rest = ''): { revision: string; path: string } {
  const slash = rest.indexOf('/');
  return slash < 0 ? { revision: rest, path: '' } : { revision: rest.slice(0, slash), path: rest.slice(slash + 1) };
}

function baseUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? 'localhost'}`;
}

export { listen } from '@ferry/runtime';
