import { Membership, type Residency, residency } from '@ferry/cache';
import { type ChunkId, formatBytes, InvalidArgumentError, type Logger, normalizePath, regionConfig } from '@ferry/core';
import type { CopyRequest } from '@ferry/jobs';
import { cacheClient, hasCacheAccess } from '@ferry/region';
import { presence, type RegionStatus, Replicator, regionStatus } from '@ferry/replicator';
import { exitSoon, stopSignal, stopWithin } from '@ferry/runtime';
import type { Context, Region } from '../context.js';
import type { Output } from '../output.js';

/**
 * Run the daemon until SIGTERM/SIGINT; a second signal exits at once. The stop takes at most
 * `replicator.stopTimeout` (the replicator cuts off what is still running then), and the process
 * ends right after, whatever a library still holds open.
 */
export async function replicatorCommand(
  ctx: Context,
  out: Output,
  opts: { region: string; listen?: string },
  logger: Logger,
): Promise<void> {
  regionConfig(ctx.config, opts.region);
  const replicator = new Replicator({
    config: ctx.config,
    region: opts.region,
    logger,
    processMetrics: true,
    ...(opts.listen ? { listen: opts.listen } : {}),
  });
  await replicator.start();
  out.event({ event: 'started', region: opts.region, api: replicator.address ?? null });
  await stopSignal(logger);
  // The replicator bounds its own stop; this bounds it again in case cutting off hangs too.
  const timeoutMs = ctx.config.replicator.stopTimeout;
  await stopWithin(() => replicator.stop(), { timeoutMs: timeoutMs + 1_000, logger, what: 'replicator' });
  exitSoon(0);
}

/**
 * Queue the copies whose last attempt failed again now, instead of at the reconciler's next pass
 * (and any failed job still kept by the queue).
 */
export async function retryFailedCommand(ctx: Context, out: Output, opts: { region: string }): Promise<void> {
  const region = await ctx.region(opts.region);
  const copies = await region.copyQueue();
  const { mirror } = region;
  if (!copies || !mirror) throw new InvalidArgumentError(`region "${region.name}" is the source; it has no copy queue`);
  const requests: CopyRequest[] = [];
  for (const failure of (await mirror.chunks.failures(copies.backlog)).failures) {
    const request = failure.request as Partial<CopyRequest> | undefined;
    if (request?.chunk === failure.chunk && typeof request.size === 'number') requests.push({ ...(request as CopyRequest), first: false });
  }
  // Within the backlog like every producer: what does not fit is queued by the next reconcile pass.
  const queued = await copies.enqueue(requests, { ifRoom: true });
  const retried = queued.queued + (await copies.retryFailed());
  out.result({ event: 'summary', command: 'retry-failed', region: region.name, retried, deferred: queued.deferred }, [
    `${retried} failed cop${retried === 1 ? 'y' : 'ies'} queued again in ${region.name}` +
      (queued.deferred > 0 ? ` (${queued.deferred} more when the queue has room: the reconciler queues them)` : ''),
  ]);
}

/** The gc and scrub lines of `ferry status`. */
function humanGc(s: RegionStatus): string[] {
  const g = s.gc;
  if (!g) return [];
  const last = g.lastPassAt ? `last pass ${new Date(g.lastPassAt).toISOString()}` : 'no pass yet';
  const lines = [
    `  gc:       ${last}; reclaimable ${formatBytes(g.reclaimable.bytes)} (${g.reclaimable.chunks} chunks), reclaimed ${formatBytes(g.reclaimed.bytes)} (${g.reclaimed.chunks} objects)`,
  ];
  for (const [mirror, held] of Object.entries(g.heldBack)) {
    lines.push(`  held:     ${formatBytes(held.bytes)} (${held.chunks} chunks) until mirror ${mirror} acknowledges the deletes`);
  }
  if (g.verified + g.bad + g.repaired > 0)
    lines.push(`  verify:   ${g.verified} chunks verified, ${g.bad} bad or missing, ${g.repaired} repaired`);
  return lines;
}

function humanStatus(s: RegionStatus): string[] {
  if (s.role === 'source') return [`${s.region} (source)`, ...humanGc(s)];
  const lag = s.lag ? `${s.lag.records ?? 'unknown number of'} records, ${s.lag.seconds.toFixed(1)} s` : 'unknown';
  const chunks = s.chunks
    ? `${s.chunks.present}/${s.chunks.referenced} present, ${s.chunks.missing} missing, ${s.chunks.failing} failing`
    : '';
  const queue = s.queue
    ? Object.entries(s.queue)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    : '';
  const lines = [`${s.region} (mirror)`, `  lag:      ${lag}`, `  chunks:   ${chunks}`, `  queue:    ${queue}`];
  for (const f of s.failures ?? []) lines.push(`  failing:  ${f.chunk} (${f.attempts} attempts, retried every pass): ${f.error}`);
  if (s.resync?.state) lines.push(`  resync:   ${s.resync.state} (snapshot ${s.resync.snapshot ?? '?'})`);
  if (s.reconcile?.at)
    lines.push(
      `  reconcile: last pass ${new Date(Number(s.reconcile.at)).toISOString()}, ${s.reconcile.missing ?? 0} missing, ${s.reconcile.queued ?? 0} queued`,
    );
  lines.push(...humanGc(s));
  return lines;
}

/** Per region: lag, missing chunks, queues, failures; with a path, the percent of its chunks each region holds. */
export async function statusCommand(ctx: Context, out: Output, path: string | undefined, opts: { region?: string }): Promise<void> {
  const names = opts.region ? [opts.region] : Object.keys(ctx.config.regions);
  const source = await ctx.source();
  const target = path === undefined ? undefined : normalizePath(path);
  const chunkIds = target === undefined ? [] : (await source.meta.filesUnder(target)).flatMap((e) => e.chunks.map((c) => c.id));
  for (const name of names) {
    const region = await ctx.region(name);
    if (target !== undefined) {
      const p = await presence(region.mirror, chunkIds);
      const state = p.percent === 100 ? 'complete' : `${p.percent}%`;
      const cached = await cacheResidency(ctx, region, chunkIds);
      const { incomplete: _omit, ...res } = cached ?? {};
      out.result({ region: name, path: target, ...p, complete: p.percent === 100, ...(cached ? { residency: res } : {}) }, [
        `${name}: ${target} ${state} (${p.present}/${p.chunks} chunks)`,
        ...(cached
          ? [
              `${name}: cache residency ${cached.percent}% (${cached.held}/${cached.chunks} chunks on all their owners; ${cached.placementsHeld}/${cached.placements} placements on ${cached.nodes.length} node${cached.nodes.length === 1 ? '' : 's'})`,
            ]
          : []),
      ]);
      continue;
    }
    const status = await regionStatus(region);
    out.result({ ...status }, humanStatus(status));
  }
}

/** Verified residency of chunks on a region's live cache nodes, when the config gives this process a cache token. */
async function cacheResidency(ctx: Context, region: Region, chunkIds: ChunkId[]): Promise<Residency | undefined> {
  const cache = region.config.cache;
  if (!hasCacheAccess(cache, 'read')) return undefined;
  const members = await new Membership({ redis: region.redis, volume: ctx.config.volume }).members();
  const client = cacheClient({ region: region.name, cache, role: 'read', logger: ctx.logger });
  try {
    return await residency({ members, replicas: cache.replicas, chunkIds, client });
  } finally {
    await client.close();
  }
}
