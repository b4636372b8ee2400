import { type Logger, regionConfig } from '@ferry/core';
import { Gateway } from '@ferry/gateway';
import { exitSoon, stopSignal, stopWithin } from '@ferry/runtime';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

/**
 * Serve the volume of a region as a read-only S3 bucket until SIGTERM/SIGINT; a second signal
 * exits at once, and the stop takes at most `replicator.stopTimeout`. `/-/metrics` takes the bearer token in FERRY_GATEWAY_METRICS_TOKEN (or a signed
 * request); `/-/healthz` is open.
 */
export async function gatewayCommand(ctx: Context, out: Output, opts: { region: string; listen?: string }, logger: Logger): Promise<void> {
  regionConfig(ctx.config, opts.region);
  const metricsToken = process.env.FERRY_GATEWAY_METRICS_TOKEN;
  const gateway = new Gateway({
    config: ctx.config,
    region: opts.region,
    logger,
    processMetrics: true,
    // Downloads still running get most of the stop deadline, then are cut.
    graceMs: Math.floor(ctx.config.replicator.stopTimeout * 0.8),
    ...(opts.listen ? { listen: opts.listen } : {}),
    ...(metricsToken ? { metricsToken } : {}),
  });
  // Listening for the signal before the start is announced: whoever saw it may stop it at once.
  const stopped = stopSignal(logger);
  try {
    await gateway.start();
  } catch (err) {
    await gateway.stop();
    throw err;
  }
  out.result({ event: 'started', region: opts.region, volume: ctx.config.volume, address: gateway.address ?? null }, [
    `gateway for volume "${ctx.config.volume}" in region ${opts.region} listening on ${gateway.address ?? '(nowhere)'} (bucket "${ctx.config.volume}")`,
  ]);
  await stopped;
  await stopWithin(() => gateway.stop(), { timeoutMs: ctx.config.replicator.stopTimeout, logger, what: 'gateway' });
  exitSoon(0);
}
