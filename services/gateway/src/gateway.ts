import { type FerryConfig, InvalidConfigError, type Logger } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { openReader, openRegion, type Region } from '@ferry/region';
import { closeGracefully, InFlightBudget } from '@ferry/runtime';
import type { ObjectStore } from '@ferry/stores';
import type { FastifyInstance } from 'fastify';
import { build, listen } from './app.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';

export interface GatewayServiceOptions {
  config: FerryConfig;
  /** The region whose Redis and store the gateway reads (a mirror falls back to the source). */
  region: string;
  logger: Logger;
  /** Address to listen on (default: config.gateway.listen); false to build without listening. */
  listen?: string | false;
  /** Bearer token for /-/metrics (the CLI reads it from FERRY_GATEWAY_METRICS_TOKEN). */
  metricsToken?: string;
  /** Stores to use instead of those the config names (tests). */
  stores?: { region?: ObjectStore; source?: ObjectStore };
  /** How long `stop()` lets running downloads finish before cutting them (default 10 s). */
  graceMs?: number;
  /** Export the process metrics (CPU, memory, event loop) too: on for the gateway process, off in tests. */
  processMetrics?: boolean;
}

/**
 * The gateway process of one region: its Redis and store, a RegionReader over them (source and
 * origin fallback, backfill copies in a mirror) and the S3 app. `start()` / `stop()`.
 */
export class Gateway {
  readonly region: string;
  readonly reader: RegionReader;
  readonly metrics: GatewayMetrics;
  readonly app: FastifyInstance;
  address: string | undefined;
  readonly #o: GatewayServiceOptions;
  readonly #region: Region;

  constructor(options: GatewayServiceOptions) {
    const { config, region } = options;
    const gateway = config.gateway;
    if (!gateway) throw new InvalidConfigError('the config has no gateway section (listen, accessKeys or anonymous, region)');
    // Checked before anything is opened, so a refused config leaves no connection behind.
    if (!gateway.anonymous && gateway.accessKeys.length === 0) {
      throw new InvalidConfigError('gateway: configure gateway.accessKeys, or set gateway.anonymous: true to serve unsigned requests');
    }
    this.#o = options;
    this.region = region;
    const log = options.logger.child({ component: 'gateway', region, volume: config.volume });
    // Fail fast (one retry): a request waiting on a dead Redis is better answered with a 503 now.
    this.#region = openRegion({
      config,
      region,
      role: 'client',
      logger: options.logger.child({ component: 'gateway', volume: config.volume }),
      clientName: 'ferry-gateway',
      ...(options.stores ? { stores: options.stores } : {}),
    });
    // Unlike a CLI read, a gateway serves many readers of the same files: it keeps hot chunks
    // (config.reader.memoryBytes).
    this.reader = openReader(this.#region);
    const budget = new InFlightBudget({ maxStreams: gateway.limits.maxStreams, maxBytes: gateway.limits.maxBytesInFlight });
    this.metrics = createMetrics({
      volume: config.volume,
      region,
      tiers: this.reader.chunks,
      inflight: budget,
      processMetrics: options.processMetrics ?? false,
    });
    this.app = build({
      volume: config.volume,
      region: gateway.region,
      reader: this.reader,
      accessKeys: gateway.accessKeys,
      anonymous: gateway.anonymous,
      ...(options.metricsToken ? { metricsToken: options.metricsToken } : {}),
      metrics: this.metrics,
      logger: log,
      ...(gateway.tls ? { tls: gateway.tls } : {}),
      limits: gateway.limits,
      budget,
      health: () => this.#region.health(),
    });
  }

  async start(): Promise<void> {
    await this.#region.ready({ warn: true, access: 'reader' });
    const address = this.#o.listen ?? this.#o.config.gateway?.listen;
    if (address) this.address = (await listen(this.app, address, this.#o.listen ? '--listen' : 'gateway.listen')).url;
  }

  /** Stop accepting requests, let running responses end, then release connections and stores. */
  async stop(): Promise<void> {
    // A 100 GB download would hold close() for minutes: after the grace period, cut it.
    await closeGracefully(this.app, { graceMs: this.#o.graceMs ?? Math.floor(this.#o.config.replicator.stopTimeout * 0.8) });
    await this.#region.close();
  }
}
