import { formatBytes, InvalidArgumentError, type Logger, regionConfig, UnavailableError } from '@ferry/core';
import type { CopyRequest } from '@ferry/jobs';
import { gcRefusalText } from '@ferry/meta';
import { Credentials } from '@ferry/region';
import { CopyRates, type PathRegion, pathPanel, type RegionStatus, Replicator, regionsPanel } from '@ferry/replicator';
import { exitSoon, stopSignal, stopWithin } from '@ferry/runtime';
import type { Context } from '../context.js';
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
  // SIGHUP: the control API's tokens read again from the config (and its `${file:…}` secrets).
  const stopReloads = ctx.onReload(logger, 'control API tokens', (config) => {
    const listen = opts.listen ?? regionConfig(config, opts.region).api?.listen;
    if (listen) replicator.setApiTokens(new Credentials(opts.region, regionConfig(config, opts.region)).apiServer(listen));
  });
  // Listening for the signal before the start is announced: whoever saw it may stop it at once.
  const stopped = stopSignal(logger);
  await replicator.start();
  out.event({ event: 'started', region: opts.region, api: replicator.address ?? null });
  await stopped;
  stopReloads();
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

/** When the lease ended or ends, as "<iso> (<n> s ago)". */
function when(ms: number): string {
  const ago = Math.round((Date.now() - ms) / 1000);
  return `${new Date(ms).toISOString()} (${ago >= 0 ? `${ago} s ago` : `in ${-ago} s`})`;
}

/** The leader line of `ferry status`: who holds the lease, or since when nobody does. */
function humanLease(s: RegionStatus): string[] {
  const l = s.lease;
  if (!l) return [];
  if (l.held) return ['  leader:   a replicator holds the lease'];
  return [`  leader:   NO replicator holds the lease${l.endsAt ? ` since ${when(l.endsAt)}` : ' (never held)'}`];
}

/** The gc and scrub lines of `ferry status`: the state now first, then the totals, labelled. */
function humanGc(s: RegionStatus): string[] {
  const g = s.gc;
  if (!g) return [];
  const last = g.lastPass ? `last pass ${new Date(g.lastPass.at).toISOString()}${g.lastPass.dryRun ? ' (dry run)' : ''}` : 'no pass yet';
  const lines = [`  gc:       ${last}; reclaimable now ${formatBytes(g.reclaimable.bytes)} (${g.reclaimable.chunks} chunks)`];
  if (g.refused) {
    lines.push(`  gc:       REFUSED since ${new Date(g.refused.at).toISOString()}: ${gcRefusalText(g.refused.reason)}; nothing deleted`);
  }
  for (const [mirror, held] of Object.entries(g.heldBack)) {
    lines.push(`  held:     ${formatBytes(held.bytes)} (${held.chunks} chunks) until mirror ${mirror} acknowledges the deletes`);
  }
  const c = g.lastCheck;
  if (c)
    lines.push(
      `  verify:   last check ${new Date(c.at).toISOString()} of ${c.path}: ${c.chunks} chunks, ${c.bad} bad or missing now, ${c.repaired} repaired`,
    );
  const t = g.totals;
  const copied = s.copied ? `copied ${formatBytes(s.copied.bytes)} (${s.copied.chunks} chunks) into the store; ` : '';
  lines.push(
    `  totals:   ${copied}gc reclaimed ${formatBytes(t.reclaimed.bytes)} (${t.reclaimed.chunks} objects); checks verified ${t.verified} chunks, found ${t.bad} bad or missing, repaired ${t.repaired}`,
  );
  return lines;
}

function humanStatus(s: RegionStatus): string[] {
  if (s.error) return [`${s.region} (${s.role})`, `  error:    ${s.error}`];
  if (s.role === 'source') return [`${s.region} (source)`, ...humanLease(s), ...humanGc(s)];
  const lag = s.lag ? `${s.lag.records ?? 'unknown number of'} records, ${s.lag.seconds.toFixed(1)} s` : 'unknown';
  const chunks = s.chunks
    ? `${s.chunks.present}/${s.chunks.referenced} present, ${s.chunks.missing} missing, ${s.chunks.failing} failing`
    : '';
  const queue = s.queue
    ? Object.entries(s.queue)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    : '';
  const rate = s.throughput
    ? `${formatBytes(s.throughput.bytesPerSecond)}/s, ${s.throughput.chunksPerSecond} chunks/s (over ${s.throughput.overSeconds} s)`
    : 'unknown';
  const lines = [`${s.region} (mirror)`, ...humanLease(s), `  lag:      ${lag}`, `  chunks:   ${chunks}`, `  queue:    ${queue}`];
  lines.push(`  copying:  ${rate}`);
  for (const f of s.failures ?? []) lines.push(`  failing:  ${f.chunk} (${f.attempts} attempts, retried every pass): ${f.error}`);
  if (s.resync?.state)
    lines.push(`  resync:   ${s.resync.state} (snapshot ${s.resync.snapshot ?? '?'})${s.resync.reason ? `: ${s.resync.reason}` : ''}`);
  if (s.reconcile?.at)
    lines.push(
      `  reconcile: last pass ${new Date(Number(s.reconcile.at)).toISOString()}, ${s.reconcile.missing ?? 0} missing, ${s.reconcile.queued ?? 0} queued`,
    );
  lines.push(...humanGc(s));
  return lines;
}

/** How long `ferry status` waits between two readings of the copied totals, for the copy rates. */
const RATE_GAP_MS = 1_000;

/**
 * Per region: lag, missing chunks, queues, failures; with a path, the percent of its chunks each
 * region holds. The same figures, computed by the same functions, as the status page's
 * /api/regions and /api/path (one JSON line per region with --json).
 */
export async function statusCommand(ctx: Context, out: Output, path: string | undefined, opts: { region?: string }): Promise<void> {
  const { config } = ctx;
  const open = (name: string) => ctx.region(name);
  const only = opts.region === undefined ? {} : { region: opts.region };
  if (path !== undefined) {
    const panel = await pathPanel({ config, open, path, ...only });
    for (const r of panel.regions) out.result({ ...r }, humanPath(r));
    failIfUnreadable(panel.regions);
    return;
  }
  // Two readings of the copied totals, a second apart, give the copy rates.
  const rates = new CopyRates();
  const names = opts.region === undefined ? Object.keys(config.regions) : [opts.region];
  const read = await Promise.all(
    names.map(async (name) => {
      const mirror = (await open(name).catch(() => undefined))?.mirror;
      if (mirror) rates.observe(name, await mirror.chunks.copied());
      return mirror !== undefined;
    }),
  );
  // Only mirrors copy: a status of the source alone does not wait.
  if (read.some(Boolean)) await new Promise((resolve) => setTimeout(resolve, RATE_GAP_MS));
  const panel = await regionsPanel({ config, open, rates, ...only });
  for (const status of panel.regions) out.result({ ...status }, humanStatus(status));
  failIfUnreadable(panel.regions);
}

function humanPath(r: PathRegion): string[] {
  if (r.error) return [`${r.region}: ${r.path}: ${r.error}`];
  const cached = r.residency;
  return [
    `${r.region}: ${r.path} ${r.complete ? 'complete' : `${r.percent}%`} (${r.present}/${r.chunks} chunks)`,
    ...(cached
      ? [
          `${r.region}: cache residency ${cached.percent}% (${cached.held}/${cached.chunks} chunks on all their owners; ${cached.placementsHeld}/${cached.placements} placements on ${cached.nodes.length} node${cached.nodes.length === 1 ? '' : 's'})`,
        ]
      : []),
    ...(r.cacheError ? [`${r.region}: ${r.cacheError}`] : []),
    ...(r.rules.length > 0 ? [`${r.region}: warm rules ${r.rules.map((w) => `${w.path} (${w.replicas} replicas)`).join(', ')}`] : []),
  ];
}

/** After printing what could be read: a region that could not be read fails the command (one line, non-zero). */
function failIfUnreadable(regions: ReadonlyArray<{ region: string; error?: string }>): void {
  const failed = regions.filter((r) => r.error);
  if (failed.length > 0) throw new UnavailableError(failed.map((r) => `region ${r.region}: ${r.error}`).join('; '));
}
