import { type Logger, regionConfig } from '@ferry/core';
import { Hub } from '@ferry/hub';
import { exitSoon, stopSignal, stopWithin } from '@ferry/runtime';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

/**
 * Serve the Hub API over a region's repos until SIGTERM/SIGINT (a second signal exits at once;
 * the stop takes at most `replicator.stopTimeout`). Clients send `hub.readToken` as HF_TOKEN;
 * `/-/metrics` also takes FERRY_HUB_METRICS_TOKEN; `/-/healthz` is open.
 */
export async function hubCommand(ctx: Context, out: Output, opts: { region: string; listen?: string }, logger: Logger): Promise<void> {
  regionConfig(ctx.config, opts.region);
  const metricsToken = process.env.FERRY_HUB_METRICS_TOKEN;
  const hub = new Hub({
    config: ctx.config,
    region: opts.region,
    logger,
    processMetrics: true,
    ...(opts.listen ? { listen: opts.listen } : {}),
    ...(metricsToken ? { metricsToken } : {}),
  });
  const stopped = stopSignal(logger);
  try {
    await hub.start();
  } catch (err) {
    await hub.stop();
    throw err;
  }
  const root = ctx.config.hub?.root ?? '/hf';
  out.result({ event: 'started', region: opts.region, volume: ctx.config.volume, root, address: hub.address ?? null }, [
    `hub for ${root} of volume "${ctx.config.volume}" in region ${opts.region} listening on ${hub.address ?? '(nowhere)'} (HF_ENDPOINT=${hub.address ?? ''})`,
  ]);
  await stopped;
  await stopWithin(() => hub.stop(), { timeoutMs: ctx.config.replicator.stopTimeout, logger, what: 'hub' });
  exitSoon(0);
}
