import { type FerryConfig, InvalidConfigError, type Logger } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { openReader, openRegion, type Region } from '@ferry/region';
import { closeGracefully, InFlightBudget } from '@ferry/runtime';
import type { ObjectStore } from '@ferry/stores';
import type { FastifyInstance } from 'fastify';
import { build, listen } from './app.js';
import { createMetrics, type HubMetrics } from './metrics.js';

export interface HubServiceOptions {
  config: FerryConfig;
  /** The region whose Redis and store the hub reads (a mirror falls back to the source). */
  region: string;
  logger: Logger;
  /** Address to listen on (default: config.hub.listen); false to build without listening. */
  listen?: string | false;
  /** Bearer token for /-/metrics besides the read token (the CLI reads FERRY_HUB_METRICS_TOKEN). */
  metricsToken?: string;
  /** Stores to use instead of those the config names (tests). */
  stores?: { region?: ObjectStore; source?: ObjectStore };
  /** How long `stop()` lets running downloads finish before cutting them (default 80 % of replicator.stopTimeout). */
  graceMs?: number;
  processMetrics?: boolean;
}

/**
 * The hub process of one region: its Redis and store, a RegionReader over them (memory → cache
 * nodes → region store → source → origin) and the Hub API app. `start()` / `stop()`.
 */
export class Hub {
  readonly region: string;
  readonly reader: RegionReader;
  readonly metrics: HubMetrics;
  readonly app: FastifyInstance;
  address: string | undefined;
  readonly #o: HubServiceOptions;
  readonly #region: Region;

  constructor(options: HubServiceOptions) {
    const { config, region } = options;
    const hub = config.hub;
    if (!hub) throw new InvalidConfigError('the config has no hub section (listen, root, readToken or anonymous)');
    // Checked before anything is opened, so a refused config leaves no connection behind.
    if (!hub.anonymous && !hub.readToken) {
      throw new InvalidConfigError(
        'hub: configure hub.readToken (clients send it as HF_TOKEN), or set hub.anonymous: true to serve without one',
      );
    }
    this.#o = options;
    this.region = region;
    this.#region = openRegion({
      config,
      region,
      role: 'client',
      logger: options.logger.child({ component: 'hub', volume: config.volume }),
      clientName: 'ferry-hub',
      ...(options.stores ? { stores: options.stores } : {}),
    });
    this.reader = openReader(this.#region);
    const budget = new InFlightBudget({ maxStreams: hub.limits.maxStreams, maxBytes: hub.limits.maxBytesInFlight });
    this.metrics = createMetrics({
      volume: config.volume,
      region,
      tiers: this.reader.chunks,
      inflight: budget,
      processMetrics: options.processMetrics ?? false,
    });
    this.app = build({
      volume: config.volume,
      region,
      reader: this.reader,
      root: hub.root,
      lfsThreshold: hub.lfsThreshold,
      anonymous: hub.anonymous,
      ...(hub.readToken ? { readToken: hub.readToken } : {}),
      ...(options.metricsToken ? { metricsToken: options.metricsToken } : {}),
      metrics: this.metrics,
      logger: options.logger.child({ component: 'hub', region, volume: config.volume }),
      ...(hub.tls ? { tls: hub.tls } : {}),
      limits: hub.limits,
      budget,
      health: () => this.#region.health(),
    });
  }

  async start(): Promise<void> {
    await this.#region.ready({ warn: true, access: 'reader' });
    const address = this.#o.listen ?? this.#o.config.hub?.listen;
    if (address) this.address = (await listen(this.app, address, this.#o.listen ? '--listen' : 'hub.listen')).url;
  }

  /** Stop accepting requests, let running downloads end (cut after the grace period), then release connections. */
  async stop(): Promise<void> {
    await closeGracefully(this.app, { graceMs: this.#o.graceMs ?? Math.floor(this.#o.config.replicator.stopTimeout * 0.8) });
    await this.#region.close();
  }
}
