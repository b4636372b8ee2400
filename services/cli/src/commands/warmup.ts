import {
  type CacheMember,
  CacheNodeClient,
  Membership,
  plannedBytes,
  type Residency,
  residency,
  type WarmResult,
  warmChunks,
  warmOrder,
} from '@ferry/cache';
import {
  type FerryConfig,
  formatBytes,
  InvalidArgumentError,
  InvalidConfigError,
  NotFoundError,
  normalizePath,
  regionConfig,
  UnauthorizedError,
  UnavailableError,
} from '@ferry/core';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

export interface WarmupCommandOptions {
  /** Default: the source region. */
  region?: string;
  /** Keep warming what is missing until every chunk is on all its owners (or no round gets further). */
  wait?: boolean;
  /** Chunks in flight (each to all its owners). Default 8. */
  concurrency?: number;
}

/** How often `--wait` asks the replicator about a queued warmup. */
const POLL_MS = 500;

type ApiConfig = NonNullable<ReturnType<typeof regionConfig>['api']>;

/** What GET /warmup/:id answers (the replicator's WarmupState). */
interface WarmupStateReply {
  id: string;
  state: string;
  children: { processed: number; pending: number; failed: number };
  residency: Residency;
  complete: boolean;
  finished: boolean;
}

/** Base URL of a region's control API: its listen address, with a wildcard host asked on loopback. */
export function apiBase(api: ApiConfig): string {
  const host = api.listen.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:');
  return `http://${host}`;
}

async function callApi<T>(api: ApiConfig, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const url = `${apiBase(api)}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        ...(api.token ? { authorization: `Bearer ${api.token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new UnavailableError(
      `replicator API at ${url}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  if (res.ok) return json as T;
  const message = `replicator API ${method} ${path}: ${String(json.message ?? `HTTP ${res.status}`)}`;
  if (res.status === 401) throw new UnauthorizedError(`${message} (check api.token)`);
  if (res.status === 404) throw new NotFoundError(message);
  if (res.status === 400) throw new InvalidArgumentError(message);
  throw new UnavailableError(message);
}

/**
 * The queued path: POST /warmup to the region's replicator, which enqueues a flow its warm workers
 * process (behind the copy in a mirror); with `--wait`, poll GET /warmup/:id until the verified
 * residency is 100 % or the flow is over short of it.
 */
async function warmupViaApi(
  config: FerryConfig,
  out: Output,
  regionName: string,
  api: ApiConfig,
  target: string,
  opts: WarmupCommandOptions,
): Promise<void> {
  const started = Date.now();
  const queued = await callApi<{ id: string; chunks: number; placements: number }>(api, 'POST', '/warmup', { paths: [target] });
  out.event({ event: 'queued', command: 'warmup', region: regionName, path: target, ...queued });
  out.line(`queued warmup ${queued.id} of ${target} in region ${regionName}: ${queued.chunks} chunks, ${queued.placements} placements`);
  let state = await callApi<WarmupStateReply>(api, 'GET', `/warmup/${encodeURIComponent(queued.id)}`);
  let shown = -1;
  while (opts.wait && !state.complete && !state.finished) {
    if (state.residency.placementsHeld !== shown) {
      shown = state.residency.placementsHeld;
      const r = state.residency;
      out.event({
        event: 'progress',
        label: 'warmup',
        id: queued.id,
        state: state.state,
        percent: r.percent,
        placementsHeld: r.placementsHeld,
        placements: r.placements,
        children: state.children,
      });
      out.line(
        `  ${r.percent}% (${r.placementsHeld}/${r.placements} placements; ${state.children.processed} fills done, ${state.children.failed} failed)`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    state = await callApi<WarmupStateReply>(api, 'GET', `/warmup/${encodeURIComponent(queued.id)}`);
  }
  const seconds = (Date.now() - started) / 1000;
  const res = state.residency;
  out.result(
    {
      event: 'summary',
      command: 'warmup',
      via: 'api',
      region: regionName,
      path: target,
      id: queued.id,
      state: state.state,
      chunks: queued.chunks,
      placements: queued.placements,
      children: state.children,
      replicas: regionConfig(config, regionName).cache?.replicas,
      residency: res,
      complete: state.complete,
      seconds,
    },
    [
      `warmup ${queued.id} of ${target} in region ${regionName}: ${state.state}, ${state.children.processed} fills done, ${state.children.pending} pending, ${state.children.failed} failed`,
      `verified residency: ${res.percent}% (${res.held}/${res.chunks} chunks on all their owners; ${res.placementsHeld}/${res.placements} placements)`,
      ...res.nodes.map((n) => `  ${n.id}: ${n.held}/${n.expected}${n.reachable ? '' : ' (unreachable)'}`),
    ],
  );
  if (opts.wait && !state.complete) {
    throw new UnavailableError(
      `warmup ${queued.id} of ${target} in region ${regionName} finished with residency ${res.percent}% (${state.children.failed} fills failed)`,
    );
  }
}

/** Rounds `--wait` makes at most; each one only re-warms what the nodes say they lack. */
const MAX_ROUNDS = 5;

function addUp(total: WarmResult, round: WarmResult): void {
  total.fetched += round.fetched;
  total.missing += round.missing;
  total.failed += round.failed;
  total.errors.push(...round.errors.slice(0, Math.max(0, 20 - total.errors.length)));
}

/**
 * `ferry warmup <path>`. When the region config has an `api` section (listen, and a token or
 * `open`), the warmup is queued on the region's replicator (POST /warmup): its warm workers fill
 * the nodes, behind the copy in a mirror, and `--wait` follows GET /warmup/:id until the verified
 * residency is 100 % (or the flow ended short of it). Without an `api` section the command warms
 * directly, as follows: put every chunk of a file or folder on its owners among the region's live
 * cache nodes, now, by asking each owner to read it through from the region's stores (no chunk
 * bytes pass through this process), then ask the nodes what they hold and print the verified
 * residency. Without `--wait` that is one pass, reported as is (exit 0). With `--wait` the chunks
 * some owner still lacks are warmed again, up to 5 passes, until residency is 100 %; if it cannot
 * get there (nodes too small for the path, chunks missing from the region) the command fails.
 * The replicator's queued warmup (POST /warmup) uses the same warmChunks/residency functions.
 */
export async function warmupCommand(ctx: Context, out: Output, path: string, opts: WarmupCommandOptions): Promise<void> {
  const regionName = opts.region ?? ctx.config.source;
  const api = regionConfig(ctx.config, regionName).api;
  if (api && (api.token || api.open)) return warmupViaApi(ctx.config, out, regionName, api, normalizePath(path), opts);
  const region = await ctx.region(opts.region);
  const cache = region.config.cache;
  if (!cache?.token) {
    throw new InvalidConfigError(
      `regions.${region.name}.cache.token: region ${region.name} has no cache nodes configured (set cache.token)`,
    );
  }
  const target = normalizePath(path);
  const entries = await region.meta.filesUnder(target);
  const chunks = warmOrder(entries);
  const bytes = chunks.reduce((sum, c) => sum + c.size, 0);
  const membership = new Membership({ redis: region.redis, volume: ctx.config.volume });
  let members: CacheMember[] = await membership.members();
  if (members.length === 0) {
    throw new UnavailableError(
      `no live cache nodes in region ${region.name}: start some with \`ferry cache-node --region ${region.name} …\``,
    );
  }
  const replicas = cache.replicas;
  const tooSmall = [...plannedBytes(members, replicas, chunks)].filter(([id, n]) => n > (members.find((m) => m.id === id)?.capacity ?? 0));
  for (const [id, n] of tooSmall) {
    const capacity = members.find((m) => m.id === id)?.capacity ?? 0;
    out.warn(
      `cache node ${id} would hold ${formatBytes(n)} of ${target} but its capacity is ${formatBytes(capacity)}: residency cannot reach 100%`,
    );
  }
  const client = new CacheNodeClient({ token: cache.token, connectTimeoutMs: cache.connectTimeoutMs, logger: ctx.logger });
  const started = Date.now();
  const total: WarmResult = { chunks: chunks.length, bytes, placements: 0, fetched: 0, held: 0, missing: 0, failed: 0, errors: [] };
  let res: Residency;
  let rounds = 0;
  try {
    let todo = chunks;
    for (;;) {
      rounds += 1;
      const todoBytes = todo.reduce((sum, c) => sum + c.size, 0);
      const progress = out.progress(rounds === 1 ? 'warmup' : `warmup (pass ${rounds})`, todoBytes);
      let reported = 0;
      let round: WarmResult;
      try {
        round = await warmChunks({
          chunks: todo,
          members,
          replicas,
          client,
          concurrency: opts.concurrency ?? 8,
          onProgress: (p) => {
            progress.tick(p.doneBytes - reported);
            reported = p.doneBytes;
          },
          logger: ctx.logger,
        });
      } finally {
        progress.stop();
      }
      if (rounds === 1) Object.assign(total, { ...round, errors: [...round.errors] });
      else addUp(total, round);
      res = await residency({ members, replicas, chunkIds: chunks.map((c) => c.id), client, listIncomplete: true });
      if (!opts.wait || res.percent === 100 || rounds >= MAX_ROUNDS || tooSmall.length > 0) break;
      const before = new Set(todo.map((c) => c.id));
      const incomplete = new Set(res.incomplete ?? []);
      if (rounds > 1 && [...before].every((id) => incomplete.has(id))) break; // the last pass got nothing further
      todo = chunks.filter((c) => incomplete.has(c.id));
      await new Promise((r) => setTimeout(r, 500));
      const fresh = await membership.members();
      if (fresh.length > 0) members = fresh;
    }
  } finally {
    await client.close();
  }
  const seconds = (Date.now() - started) / 1000;
  const { incomplete: _omit, ...residencyReport } = res;
  out.result(
    {
      event: 'summary',
      command: 'warmup',
      region: region.name,
      path: target,
      files: entries.length,
      nodes: members.map((m) => m.id),
      replicas,
      rounds,
      ...total,
      residency: residencyReport,
      complete: res.percent === 100,
      seconds,
    },
    [
      `warmed ${target}: ${entries.length} file${entries.length === 1 ? '' : 's'}, ${chunks.length} chunks (${formatBytes(bytes)}) on ${members.length} cache node${members.length === 1 ? '' : 's'} of region ${region.name}, ${Math.min(replicas, members.length)} replica${Math.min(replicas, members.length) === 1 ? '' : 's'} each, in ${seconds.toFixed(1)} s`,
      `placements: ${total.placements} (${total.fetched} fetched by the nodes, ${total.held} already held, ${total.missing} missing from the region, ${total.failed} failed)`,
      `verified residency: ${res.percent}% (${res.held}/${res.chunks} chunks on all their owners; ${res.placementsHeld}/${res.placements} placements)`,
      ...res.nodes.map((n) => `  ${n.id}: ${n.held}/${n.expected}${n.reachable ? '' : ' (unreachable)'}`),
      ...total.errors.slice(0, 5).map((e) => `  failed: ${e.chunk} on ${e.node}: ${e.error}`),
    ],
  );
  if (opts.wait && res.percent < 100) {
    throw new UnavailableError(
      `warmup of ${target} in region ${region.name} incomplete after ${rounds} pass${rounds === 1 ? '' : 'es'}: residency ${res.percent}%`,
    );
  }
}
