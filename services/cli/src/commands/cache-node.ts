import { resolve } from 'node:path';
import { CacheNode, regionUpstream } from '@ferry/cache-node';
import { formatBytes, InvalidArgumentError, InvalidConfigError, type Logger, parseSize, regionConfig } from '@ferry/core';
import { Membership } from '@ferry/meta';
import { Credentials } from '@ferry/region';
import { exitSoon, stopSignal, stopWithin } from '@ferry/runtime';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

export interface CacheNodeCommandOptions {
  region: string;
  dir: string;
  /** `200GiB`, or bytes. */
  capacity: string | number;
  /** Relative share of chunks; default 1. */
  weight?: string | number;
  /** host:port (port 0: any free port). */
  listen: string;
  /** Stable node id (default: the one recorded in the dir, else `<hostname>-<port>`). */
  id?: string;
  /** URL other hosts reach this node at, when the listen address is not it (0.0.0.0, NAT). */
  advertise?: string;
}

function parseWeight(value: string | number | undefined): number {
  const n = value === undefined ? 1 : Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 1_000_000) throw new InvalidArgumentError(`--weight must be a positive number, got "${value}"`);
  return n;
}

/**
 * Run a cache node of a region until SIGTERM/SIGINT (a second signal exits at once; the stop takes
 * at most `replicator.stopTimeout`): chunks on
 * local disk up to `capacity`, read-through from the region's store, then the source's, then the
 * origin object of an imported file (found in the region's metadata), and a heartbeat into the
 * region's Redis so readers and warmups place chunks on it.
 */
export async function cacheNodeCommand(ctx: Context, out: Output, opts: CacheNodeCommandOptions, logger: Logger): Promise<void> {
  const region = await ctx.region(opts.region);
  // A node's Redis user: its membership keys, and reads (logged at start; one line when it lacks them).
  await region.ready({ access: 'cache-node' });
  const tokens = region.credentials.cacheServer();
  const cache = region.config.cache as NonNullable<typeof region.config.cache>;
  if (cache.tls && !cache.tls.cert) {
    throw new InvalidConfigError(`regions.${region.name}.cache.tls: set cert and key to serve cache nodes over TLS`);
  }
  const capacity = parseSize(opts.capacity);
  if (capacity < ctx.config.chunkSize) {
    throw new InvalidArgumentError(`--capacity ${formatBytes(capacity)} is smaller than one chunk (${formatBytes(ctx.config.chunkSize)})`);
  }
  const weight = parseWeight(opts.weight);
  const log = logger.child({ component: 'cache-node', region: region.name });
  for (const report of region.redisReports) for (const warning of report.warnings) log.warn({ redis: report.where }, warning);
  // The upstream is made before the node whose metrics count its bad copies.
  let metrics: CacheNode['metrics'] | undefined;
  const node = new CacheNode({
    dir: resolve(opts.dir),
    capacity,
    weight,
    tokens,
    ...(cache.tls?.cert && cache.tls.key ? { tls: { cert: cache.tls.cert, key: cache.tls.key } } : {}),
    limits: cache.limits,
    listen: opts.listen,
    maxChunkBytes: ctx.config.chunkSize,
    scrubBytesPerSecond: cache.scrubBytesPerSecond,
    upstream: regionUpstream({
      store: { name: `store:${region.name}`, store: region.store },
      // The source's store, not its Redis: a node never needs the source's metadata.
      ...(region.isSource ? {} : { source: { name: `source:${region.sourceName}`, store: region.sourceStore } }),
      openOrigin: (url) => region.origins.open(url),
      hashes: region.hashes,
      onBadCopy: () => metrics?.corrupt.inc({ where: 'upstream' }),
      logger: log,
    }),
    hashes: region.hashes,
    entries: region.meta,
    membership: new Membership({ redis: region.redis, volume: ctx.config.volume }),
    logger: log,
    processMetrics: true,
    graceMs: Math.floor(ctx.config.replicator.stopTimeout * 0.8),
    ...(opts.id !== undefined ? { id: opts.id } : {}),
    ...(opts.advertise !== undefined ? { advertise: opts.advertise } : {}),
  });
  metrics = node.metrics;
  // SIGHUP: the tokens read again from the config (and the `${file:…}` secrets it names).
  const stopReloads = ctx.onReload(log, 'cache node tokens', (config) =>
    node.setTokens(new Credentials(region.name, regionConfig(config, region.name)).cacheServer()),
  );
  // Listening for the signal before the start is announced: whoever saw `started` may stop it at once.
  const stopped = stopSignal(log);
  const started = await node.start();
  out.event({
    event: 'started',
    region: region.name,
    id: started.id,
    url: started.url,
    capacity,
    weight,
    chunks: node.cache.count,
    used: node.cache.used,
  });
  out.line(
    `cache node ${started.id} of region ${region.name} serving ${started.url} (${formatBytes(node.cache.used)} of ${formatBytes(capacity)} held, weight ${weight})`,
  );
  await stopped;
  stopReloads();
  await stopWithin(() => node.stop(), { timeoutMs: ctx.config.replicator.stopTimeout, logger: log, what: 'cache node' });
  out.event({ event: 'stopped', id: started.id });
  exitSoon(0);
}
