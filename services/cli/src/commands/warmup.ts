import { type WarmNowReport, warmNow } from '@ferry/cache';
import { formatBytes, InvalidConfigError, normalizePath, regionConfig, UnauthorizedError, UnavailableError } from '@ferry/core';
import { Membership } from '@ferry/meta';
import { type ControlClient, cacheClient, controlClient, type WarmupState } from '@ferry/region';
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

function residencyLines(state: Pick<WarmupState, 'residency'>): string[] {
  const res = state.residency;
  return [
    `verified residency: ${res.percent}% (${res.held}/${res.chunks} chunks on all their owners; ${res.placementsHeld}/${res.placements} placements)`,
    ...res.nodes.map((n) => `  ${n.id}: ${n.held}/${n.expected}${n.reachable ? '' : ' (unreachable)'}`),
  ];
}

/**
 * The queued path: POST /warmup to the region's replicator, which enqueues a flow its warm workers
 * process (behind the copy in a mirror); with `--wait`, poll GET /warmup/:id until the verified
 * residency is 100 % or the flow is over short of it.
 */
async function warmupViaApi(ctx: Context, out: Output, regionName: string, api: ControlClient, target: string, opts: WarmupCommandOptions) {
  const started = Date.now();
  const queued = await api.warmup([target]);
  out.event({ event: 'queued', command: 'warmup', region: regionName, path: target, ...queued });
  out.line(`queued warmup ${queued.id} of ${target} in region ${regionName}: ${queued.chunks} chunks, ${queued.placements} placements`);
  let state = await api.warmupState(queued.id);
  let shown = -1;
  while (opts.wait && !state.ready && !state.finished) {
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
        `  ${r.placementsHeld}/${r.placements} placements held (${r.percent}% of chunks on all their owners); ${state.children.processed} fills done, ${state.children.failed} failed`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    state = await api.warmupState(queued.id);
  }
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
      replicas: regionConfig(ctx.config, regionName).cache?.replicas,
      residency: res,
      missing: state.missing,
      complete: state.complete,
      ready: state.ready,
      seconds: (Date.now() - started) / 1000,
    },
    [
      `warmup ${queued.id} of ${target} in region ${regionName}: ${state.state}, ${state.children.processed} fills done, ${state.children.pending} pending, ${state.children.failed} failed`,
      ...residencyLines(state),
      `${state.ready ? 'ready' : 'not ready'}: ${state.missing === 0 ? 'every chunk is in the region' : `${state.missing} chunks not in the region yet`}, residency ${res.percent}%`,
    ],
  );
  if (opts.wait && !state.ready) {
    throw new UnavailableError(
      `warmup ${queued.id} of ${target} in region ${regionName} is not ready: residency ${res.percent}%, ${state.missing} chunks not in the region (${state.children.failed} fills failed)`,
    );
  }
}

/**
 * `ferry warmup <path>`. When the region config has an `api` section (listen, and a token or
 * `open`), the warmup is queued on the region's replicator (POST /warmup): its warm workers fill
 * the nodes, behind the copy in a mirror, and `--wait` follows GET /warmup/:id until the verified
 * residency is 100 % (or the flow ended short of it). Without an `api` section the nodes are
 * warmed now, from this process (`warmNow`): one pass without `--wait` (exit 0 whatever the
 * residency); with `--wait` up to 5 passes, and the command fails if residency cannot reach 100 %.
 */
export async function warmupCommand(ctx: Context, out: Output, path: string, opts: WarmupCommandOptions): Promise<void> {
  const regionName = opts.region ?? ctx.config.source;
  const target = normalizePath(path);
  const client = controlClient(regionName, regionConfig(ctx.config, regionName));
  if (client) {
    try {
      return await warmupViaApi(ctx, out, regionName, client, target, opts);
    } finally {
      await client.close();
    }
  }
  const region = await ctx.region(opts.region);
  const cache = region.config.cache;
  if (!cache) {
    throw new InvalidConfigError(`regions.${region.name}.cache: region ${region.name} has no cache nodes configured`);
  }
  // A direct warmup fills nodes: it needs the write token (readers never hold it). Closed with the region.
  const nodes = cacheClient(region, 'write');
  const entries = await region.meta.filesUnder(target);
  const started = Date.now();
  let report: WarmNowReport;
  try {
    report = await warmNow({
      entries,
      membership: new Membership({ redis: region.redis, volume: ctx.config.volume }),
      client: nodes,
      replicas: cache.replicas,
      wait: opts.wait ?? false,
      concurrency: opts.concurrency ?? 8,
      onPlan: ({ overCapacity }) => {
        for (const o of overCapacity) {
          out.warn(
            `cache node ${o.node} would hold ${formatBytes(o.bytes)} of ${target} but its capacity is ${formatBytes(o.capacity)}: residency cannot reach 100%`,
          );
        }
      },
      onPass: (pass, bytes) => {
        const progress = out.progress(pass === 1 ? 'warmup' : `warmup (pass ${pass})`, bytes);
        let reported = 0;
        return {
          progress: (p) => {
            progress.tick(p.doneBytes - reported);
            reported = p.doneBytes;
          },
          end: () => progress.stop(),
        };
      },
      logger: ctx.logger,
    });
  } catch (err) {
    if (err instanceof UnavailableError && err.message === 'no live cache nodes') {
      throw new UnavailableError(
        `no live cache nodes in region ${region.name}: start some with \`ferry cache-node --region ${region.name} …\``,
      );
    }
    throw err;
  }
  const seconds = (Date.now() - started) / 1000;
  const { overCapacity: _shown, passes, ...figures } = report;
  const r = report;
  const replicasEach = Math.min(r.replicas, r.nodes.length);
  // Ready for a deploy: on all owners, and (in a mirror) every chunk copied into the region too.
  const notCopied = region.mirror
    ? (await region.mirror.missing([...new Set(entries.flatMap((e) => e.chunks.map((c) => c.id)))])).length
    : 0;
  const ready = r.complete && notCopied === 0;
  out.result(
    { event: 'summary', command: 'warmup', region: region.name, path: target, ...figures, rounds: passes, notCopied, ready, seconds },
    [
      `warmed ${target}: ${r.files} file${r.files === 1 ? '' : 's'}, ${r.chunks} chunks (${formatBytes(r.bytes)}) on ${r.nodes.length} cache node${r.nodes.length === 1 ? '' : 's'} of region ${region.name}, ${replicasEach} replica${replicasEach === 1 ? '' : 's'} each, in ${seconds.toFixed(1)} s`,
      `placements: ${r.placements} (${r.fetched} fetched by the nodes, ${r.held} already held, ${r.missing} missing from the region, ${r.failed} failed)`,
      ...residencyLines(r),
      ...r.errors.slice(0, 5).map((e) => `  failed: ${e.chunk} on ${e.node}: ${e.error}`),
      `${ready ? 'ready' : 'not ready'}: ${notCopied === 0 ? 'every chunk is in the region' : `${notCopied} chunks not in the region yet`}, residency ${r.residency.percent}%`,
    ],
  );
  // A refused credential is a mistake to fix, not a residency to wait for: a failure either way.
  const refused = r.errors.find((e) => e.code === 'UNAUTHORIZED');
  if (refused) {
    throw new UnauthorizedError(
      `cache node ${refused.node} refused the write token: check regions.${region.name}.cache.writeToken (a direct warmup fills nodes with it)`,
    );
  }
  if (opts.wait && !ready) {
    throw new UnavailableError(
      `warmup of ${target} in region ${region.name} incomplete after ${passes} pass${passes === 1 ? '' : 'es'}: residency ${r.residency.percent}%, ${notCopied} chunks not in the region`,
    );
  }
}
