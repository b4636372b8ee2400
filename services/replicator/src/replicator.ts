import { type FerryConfig, InvalidConfigError, type Logger, type RegionConfig, regionConfig, type WarmRule } from '@ferry/core';
import { QUEUES, queuePrefix } from '@ferry/jobs';
import { duplicateConnection, GcMeta, Lease, LogPosition, Membership, Meta, type RedisClient } from '@ferry/meta';
import { type ApiServerTokens, cacheClient, openRegion, type Region } from '@ferry/region';
import { closeGracefully } from '@ferry/runtime';
import type { ObjectStore } from '@ferry/stores';
import { Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { build as buildApi, listen as listenApi } from './app.js';
import { COPY_WORKER_LOCKS, isFinalFailure } from './job-workers.js';
import { type RegionMaintenance, startMaintenance } from './maintenance.js';
import { createMetrics, type Metrics } from './metrics.js';
import { MirrorLoops } from './mirror-loops.js';
import { type RegionStatus, regionStatus } from './status.js';
import { StatusPage } from './status-page.js';
import { WarmRules } from './warm-rules.js';
import { createWarmProcessor, WarmFlows, warmupRoutes } from './warmup.js';

export interface ReplicatorOptions {
  config: FerryConfig;
  region: string;
  logger: Logger;
  /** Control API address (default: the region's `api.listen`); false for none. */
  listen?: string | false;
  /** Stores to use instead of those the config names (tests inject fault decorators here). */
  stores?: { source?: ObjectStore; target?: ObjectStore };
  /** Watcher tuning (default lease: replicator.leaseTtl; tests shorten it and the resync page). */
  watcher?: { leaseTtlMs?: number; blockMs?: number; batch?: number; resyncPageSize?: number };
  /** How long stop() may take before it cuts everything (default: replicator.stopTimeout). */
  stopTimeoutMs?: number;
  /** Warm worker tuning: how long a fill waits for the copy before reading through from the source, how often it looks. */
  warm?: { copyWaitMs?: number; recheckMs?: number };
  /** Pause between background scrub passes (default a minute; tests shorten it). */
  scrubPauseMs?: number;
  /** Export the process metrics (CPU, memory, event loop) too: on for the daemon process, off in tests. */
  processMetrics?: boolean;
  /** How often the status page's history samples every region's lag and throughput (default 10 s; an hour is kept). */
  historyEveryMs?: number;
}

/** The status page's history: a sample every 10 s, an hour of them (360 per region). */
const HISTORY_EVERY_MS = 10_000;

/**
 * The per-region daemon: in a mirror, the watcher and its reconciler (one leader per region) and
 * copy workers (every replica); in a region with cache nodes, warmup flows, warm workers and the
 * warm rules (one follower per region); everywhere, the control API. Start with `start()`, stop
 * with `stop()` (in-flight copies finish; a waiting read is cut short; whatever is still running
 * at the stop deadline is cut off, as after a kill -9).
 */
export class Replicator {
  readonly metrics: Metrics;
  readonly region: string;
  readonly isSource: boolean;
  readonly #o: ReplicatorOptions;
  readonly #log: Logger;
  /** Connections, stores and metadata of the region (and of the source, for the watcher). */
  readonly #region: Region;
  /** In a mirror: the copy worker, the watcher, its reconciler and the backfill loop. */
  #mirror: MirrorLoops | undefined;
  /** What the control API accepts, swapped in place by `setApiTokens`. */
  #apiTokens: ApiServerTokens | undefined;
  /** Garbage collection and the background scrub, on the leading replica (in the source, under a lease of its own). */
  #maintenance: RegionMaintenance | undefined;
  #stopped: Promise<void> | undefined;
  #api: FastifyInstance | undefined;
  /** Warmup flows and the warm worker, in a region whose daemons hold the cache write token. */
  #warm: WarmFlows | undefined;
  #warmWorker: Worker | undefined;
  #warmRedis: RedisClient | undefined;
  /** The region's warm rules (`warm:`), followed by one replica. */
  #warmRules: WarmRules | undefined;
  /** The status page's panels and their history (with the control API). */
  #page: StatusPage | undefined;
  address: string | undefined;

  constructor(options: ReplicatorOptions) {
    const { config, region } = options;
    this.#o = options;
    this.region = region;
    this.isSource = region === config.source;
    this.#log = options.logger.child({ region, volume: config.volume });
    // Daemon connections wait through a Redis restart instead of failing each command.
    this.#region = openRegion({
      config,
      region,
      role: 'daemon',
      logger: options.logger.child({ volume: config.volume }),
      clientName: 'ferry-replicator',
      ...(options.stores
        ? {
            stores: {
              ...(options.stores.target ? { region: options.stores.target } : {}),
              ...(options.stores.source ? { source: options.stores.source } : {}),
            },
          }
        : {}),
    });
    const mirror = this.#region.mirror;
    const gcMeta = new GcMeta({ redis: this.#region.redis, keys: this.#region.meta.keys, mirror: mirror !== undefined });
    this.metrics = createMetrics({
      processMetrics: options.processMetrics ?? false,
      gc: { region, info: () => gcMeta.info() },
      ...(mirror
        ? {
            chunks: {
              region,
              counts: () => mirror.counts(),
              failures: async () => (await mirror.chunks.failures(10)).failures,
            },
          }
        : {}),
    });
  }

  get #redis(): RedisClient {
    return this.#region.redis;
  }

  /** Start the daemon; when that fails, whatever had started is stopped again before the error is thrown. */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.stop().catch(() => {});
      throw err;
    }
  }

  async #start(): Promise<void> {
    const { config, region } = this.#o;
    const own = regionConfig(config, region);
    // Configuration mistakes fail before anything runs (a half-started daemon would keep working).
    const listen = this.#o.listen ?? own.api?.listen;
    const apiTokens = listen ? { ...this.#region.credentials.apiServer(listen) } : undefined;
    this.#apiTokens = apiTokens;
    if (listen && own.api?.tls && !own.api.tls.cert) {
      throw new InvalidConfigError(`regions.${region}.api.tls: set cert and key to serve the control API over TLS`);
    }
    const r = this.#region;
    await r.ready({ source: true, access: 'replicator' });
    const { mirror } = r;
    const copies = await r.copyQueue();
    if (mirror && copies) {
      this.#mirror = MirrorLoops.start({
        region: r,
        own,
        volume: config.volume,
        leaseTtlMs: this.#o.watcher?.leaseTtlMs ?? config.replicator.leaseTtl,
        ...(this.#o.watcher ? { watcher: this.#o.watcher } : {}),
        copies,
        stopping: () => this.#stopped !== undefined,
        metrics: this.metrics,
        logger: this.#log,
      });
    }
    const watcher = this.#mirror?.watcher;
    this.#maintenance = startMaintenance({
      region: this.#region,
      own,
      ...(watcher ? { token: () => watcher.token } : {}),
      leaseTtlMs: this.#o.watcher?.leaseTtlMs ?? config.replicator.leaseTtl,
      ...(this.#o.scrubPauseMs === undefined ? {} : { scrubPauseMs: this.#o.scrubPauseMs }),
      logger: this.#log,
    });
    if (own.cache && r.credentials.cache('write') !== undefined) this.#startWarm(own.cache, own.copy.concurrency, own.warm);
    if (listen && apiTokens && own.api) {
      this.#api = buildApi({
        tokens: apiTokens,
        log: this.#log.child({ component: 'api' }),
        registry: this.metrics.registry,
        ...(own.api.tls?.cert && own.api.tls.key ? { tls: { cert: own.api.tls.cert, key: own.api.tls.key } } : {}),
        limits: own.api.limits,
        status: () => this.status(),
        ...(copies ? { retryFailed: () => copies.retryFailed() } : {}),
        health: async () => this.health(),
        panels: this.#startPage(),
        routes: warmupRoutes(() => this.#warm),
      });
      this.address = (await listenApi(this.#api, listen, this.#o.listen ? '--listen' : `regions.${this.#region.name}.api.listen`)).url;
    }
    this.#log.info({ role: this.isSource ? 'source' : 'mirror', api: this.address }, 'replicator started');
  }

  #startPage(): StatusPage {
    this.#page = new StatusPage({
      config: this.#o.config,
      region: this.#region,
      everyMs: this.#o.historyEveryMs ?? HISTORY_EVERY_MS,
      logger: this.#log.child({ component: 'status' }),
    });
    return this.#page;
  }

  /** Warmup flows (POST /warmup) and the warm worker that fills the cache nodes, behind the copy in a mirror. */
  #startWarm(cache: NonNullable<RegionConfig['cache']>, concurrency: number, rules: readonly WarmRule[]): void {
    const { config } = this.#o;
    const log = this.#log.child({ component: 'warm' });
    // The warm workers fill nodes: the write token's job.
    const client = cacheClient(this.#region, 'write');
    const membership = new Membership({ redis: this.#redis, volume: config.volume });
    this.#warm = new WarmFlows({
      redis: this.#redis,
      volume: config.volume,
      meta: this.#region.meta,
      ...(this.#region.mirror ? { mirror: this.#region.mirror } : {}),
      membership,
      client,
      replicas: cache.replicas,
      logger: log,
    });
    const processor = createWarmProcessor({
      client,
      membership,
      ...(this.#region.mirror ? { mirror: this.#region.mirror } : {}),
      ...this.#o.warm,
      logger: log,
    });
    this.#warmRedis = duplicateConnection(this.#redis, `ferry-replicator-${this.region}-warm`, { maxRetriesPerRequest: null });
    this.#warmWorker = new Worker(QUEUES.warm, processor, {
      connection: this.#warmRedis,
      prefix: queuePrefix(config.volume),
      concurrency,
      autorun: true,
      ...COPY_WORKER_LOCKS,
    });
    this.#warmWorker.on('failed', (job, err) => {
      const final = isFinalFailure(job, err);
      log[final ? 'error' : 'warn'](
        { err, job: job?.id, attempt: job?.attemptsMade },
        final ? 'warm job failed for good' : 'warm job failed; will retry',
      );
    });
    this.#warmWorker.on('error', (err) => log.warn({ err }, 'warm worker error'));
    if (rules.length > 0) this.#startWarmRules(this.#warm, rules, this.#log.child({ component: 'warm-rules' }));
  }

  #startWarmRules(flows: WarmFlows, rules: readonly WarmRule[], log: Logger): void {
    const r = this.#region;
    const keys = r.meta.keys;
    const leaseTtlMs = this.#o.watcher?.leaseTtlMs ?? this.#o.config.replicator.leaseTtl;
    this.#warmRules = new WarmRules({
      region: this.region,
      rules,
      // A Meta of its own: its blocking reads get a connection of their own, not the watcher's.
      source: new Meta({ redis: r.sourceRedis, volume: r.volume, logMaxLen: this.#o.config.log.maxLen, logger: log }),
      position: new LogPosition({ redis: this.#redis, key: keys.warmCursor }),
      lease: new Lease({ redis: this.#redis, key: keys.warmLease, fenceKey: keys.warmFence, endKey: keys.warmLeaseEnd, ttlMs: leaseTtlMs }),
      flows,
      metrics: this.metrics,
      logger: log,
      ...(this.#o.watcher?.blockMs ? { blockMs: this.#o.watcher.blockMs } : {}),
    });
    this.#warmRules.start();
  }

  /**
   * Accept these control API tokens from now on (a reload of the config on SIGHUP). Whether the
   * API is open stays as it started: opening or closing it is a restart.
   */
  setApiTokens(tokens: { read?: string; admin?: string }): void {
    if (!this.#apiTokens) return;
    this.#apiTokens.read = tokens.read;
    this.#apiTokens.admin = tokens.admin;
  }

  async health(): Promise<{ ok: boolean; detail: Record<string, unknown> }> {
    const { redis, sourceRedis } = this.#region;
    const detail: Record<string, unknown> = { redis: redis.status, sourceRedis: sourceRedis.status };
    const loops = this.#mirror;
    if (loops) {
      Object.assign(detail, { leader: loops.watcher.isLeader, lastError: loops.watcher.lastError ?? null });
      Object.assign(detail, { reconcileError: loops.reconciler.lastError ?? null });
    }
    return { ok: redis.status === 'ready' && sourceRedis.status === 'ready', detail };
  }

  async status(): Promise<RegionStatus & { leader?: boolean }> {
    const status = await regionStatus(this.#region);
    if (status.lag) {
      if (status.lag.records !== null) this.metrics.lagRecords.set({ region: this.region }, status.lag.records);
      this.metrics.lagSeconds.set({ region: this.region }, status.lag.seconds);
    }
    for (const [state, n] of Object.entries(status.queue ?? {})) this.metrics.queueDepth.set({ region: this.region, state }, n);
    return this.#mirror ? { ...status, leader: this.#mirror.watcher.isLeader } : status;
  }

  /**
   * Stop within the stop deadline (`replicator.stopTimeout`): no new reads or jobs, in-flight
   * copies finish, the lease is given back, connections close. When Redis or a store does not
   * answer, whatever is still waiting at the deadline is cut off: connections are dropped and
   * the workers closed without waiting, so running jobs are released as after a kill -9 (their
   * locks expire and another replica takes them up). Stopping again waits for the first stop.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    const deadline = this.#o.stopTimeoutMs ?? this.#o.config.replicator.stopTimeout;
    this.#log.info({ deadlineMs: deadline }, 'stopping');
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), deadline);
    });
    const graceful = this.#stopGracefully(deadline).then(
      () => 'stopped' as const,
      (err: unknown) => {
        this.#log.warn({ err }, 'stop failed; cutting off what is left');
        return 'failed' as const;
      },
    );
    const outcome = await Promise.race([graceful, expired]);
    clearTimeout(timer);
    if (outcome !== 'stopped') {
      if (outcome === 'expired') this.#log.warn({ deadlineMs: deadline }, 'stop deadline passed; cutting off what is still running');
      await this.#cutOff();
    }
    this.#log.info('stopped');
  }

  async #stopGracefully(deadline: number): Promise<void> {
    // The control API's requests are short: a client that holds on is cut after part of the deadline.
    if (this.#api) await closeGracefully(this.#api, { graceMs: Math.max(100, Math.floor(deadline / 3)) });
    await this.#page?.stop();
    // Closing the source metadata first cuts a waiting read short, so the watcher stops at once.
    const loopsStopped = this.#mirror?.stopLoops();
    const maintenanceStopped = this.#maintenance?.stop();
    await this.#region.interruptSourceReads();
    await this.#warmRules?.stop();
    await loopsStopped;
    await maintenanceStopped;
    await this.#mirror?.closeWorker();
    await this.#warmWorker?.close();
    this.#warmRedis?.disconnect();
    await this.#warm?.close();
    await this.#region.close();
  }

  /** Drop every connection and close the workers without waiting for their jobs. */
  async #cutOff(): Promise<void> {
    this.#warmRedis?.disconnect();
    this.#region.redis.disconnect();
    this.#region.sourceRedis.disconnect();
    const forced = Promise.allSettled([
      this.#mirror?.cutOff(),
      this.#warmWorker?.close(true),
      this.#api?.server.closeAllConnections(),
      this.#region.close(),
      this.#page?.stop(),
    ]);
    // Closing itself may wait on a connection that is gone: give it a moment, not the process.
    await Promise.race([forced, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
  }
}
