import { type FerryConfig, InvalidConfigError, type Logger, type RegionConfig, regionConfig, type WarmRule } from '@ferry/core';
import { COPY_JOB, QUEUES, queuePrefix } from '@ferry/jobs';
import { duplicateConnection, GcMeta, Lease, LogPosition, Membership, Meta, type RedisClient } from '@ferry/meta';
import { type ApiServerTokens, cacheClient, openRegion, type Region } from '@ferry/region';
import { closeGracefully } from '@ferry/runtime';
import type { ObjectStore } from '@ferry/stores';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { build as buildApi, listen as listenApi } from './app.js';
import { Backfill } from './backfill.js';
import { copyJobHandler, createCopyProcessor, THROTTLED_BATCH_CONCURRENCY } from './copy-worker.js';
import { type RegionMaintenance, startMaintenance } from './maintenance.js';
import { createMetrics, type Metrics } from './metrics.js';
import { Reconciler } from './reconciler.js';
import { type RegionStatus, regionStatus } from './status.js';
import { StatusPage } from './status-page.js';
import { Throttle } from './throttle.js';
import { WarmRules } from './warm-rules.js';
import { createWarmProcessor, WarmFlows, warmupRoutes } from './warmup.js';
import { Watcher } from './watcher.js';

/** Whether BullMQ is done with a failed job: out of attempts, or failed as unrecoverable. */
function isFinalFailure(job: Job | undefined, err: Error): boolean {
  return err instanceof UnrecoverableError || (job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1));
}

/**
 * How the copy workers hold their jobs. A replica that dies (kill -9, OOM, a lost node) leaves
 * its jobs active under a lock nobody renews; BullMQ's stalled check puts them back in line once
 * the lock has expired. A shorter lock than BullMQ's 30 s gets them copied sooner (the lock is
 * renewed every half of it on a timer, so a slow copy keeps it), and since copying a chunk again
 * is harmless, a job that stalls several times is retried rather than failed for good (BullMQ's
 * default fails it the second time, which would leave the chunk missing until retry-failed).
 */
const COPY_WORKER_LOCKS = { lockDuration: 10_000, stalledInterval: 5_000, maxStalledCount: 100 } as const;

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
  #watcher: Watcher | undefined;
  #reconciler: Reconciler | undefined;
  #backfill: Backfill | undefined;
  /** What the control API accepts, swapped in place by `setApiTokens`. */
  #apiTokens: ApiServerTokens | undefined;
  /** Garbage collection and the background scrub, on the leading replica (in the source, under a lease of its own). */
  #maintenance: RegionMaintenance | undefined;
  #stopped: Promise<void> | undefined;
  #worker: Worker | undefined;
  /** BullMQ does not close connections it is given, so the daemon keeps and closes this one. */
  #workerRedis: RedisClient | undefined;
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
      const processor = createCopyProcessor({
        region,
        source: r.sourceStore,
        target: r.store,
        originStore: (url) => r.origins.open(url),
        presence: mirror,
        hashes: r.hashes,
        ...(own.copy.bytesPerSecond ? { throttle: new Throttle(own.copy.bytesPerSecond) } : {}),
        metrics: this.metrics,
        logger: this.#log.child({ component: 'copy' }),
      });
      this.#workerRedis = duplicateConnection(this.#redis, `ferry-replicator-${region}-copy`, { maxRetriesPerRequest: null });
      const handle = copyJobHandler(
        processor,
        mirror,
        this.#log.child({ component: 'copy' }),
        () => this.#stopped !== undefined,
        ...(own.copy.bytesPerSecond ? [THROTTLED_BATCH_CONCURRENCY] : []),
      );
      this.#worker = new Worker(QUEUES.copy, handle, {
        connection: this.#workerRedis,
        prefix: queuePrefix(config.volume),
        concurrency: own.copy.concurrency,
        autorun: true,
        ...COPY_WORKER_LOCKS,
      });
      // A batch job that ended no longer holds its chunks: a producer looking for their jobs finds none.
      const settle = (job: Job | undefined) => {
        if (job?.name !== COPY_JOB.batch) return;
        const chunks = (job.data as { chunks?: Array<{ chunk: string }> }).chunks ?? [];
        copies.settleBatch(chunks.map((c) => c.chunk)).catch((err: unknown) => this.#log.warn({ err }, 'could not settle a copy batch'));
      };
      this.#worker.on('completed', settle);
      this.#worker.on('failed', (job, err) => {
        this.metrics.copyFailures.inc({ region });
        const final = isFinalFailure(job, err);
        if (final) settle(job);
        this.#log[final ? 'error' : 'warn'](
          { err, chunk: job?.id, attempt: job?.attemptsMade },
          final ? 'copy failed; the reconciler queues it again on its next pass' : 'copy failed; will retry',
        );
      });
      this.#worker.on('error', (err) => this.#log.warn({ err }, 'copy worker error'));
      const leaseTtlMs = this.#o.watcher?.leaseTtlMs ?? config.replicator.leaseTtl;
      const watcher = new Watcher({
        region,
        source: r.sourceMeta,
        mirror,
        lease: new Lease({
          redis: this.#redis,
          key: mirror.keys.watcherLease,
          fenceKey: mirror.keys.fence,
          endKey: mirror.keys.watcherLeaseEnd,
          ttlMs: leaseTtlMs,
        }),
        copies,
        metrics: this.metrics,
        logger: this.#log.child({ component: 'watcher' }),
        ...this.#o.watcher,
        onBacklogDeferred: () => this.#reconciler?.wake(),
      });
      this.#watcher = watcher;
      this.#reconciler = new Reconciler({
        region,
        meta: r.meta,
        mirror,
        copies,
        token: () => watcher.token,
        onFenced: (err) => watcher.refused(err),
        everyMs: own.copy.reconcileEvery,
        fullEveryMs: own.copy.fullReconcileEvery,
        metrics: this.metrics,
        logger: this.#log.child({ component: 'reconcile' }),
      });
      this.#backfill = new Backfill({
        region,
        meta: r.meta,
        mirror,
        copies,
        token: () => watcher.token,
        onFenced: (err) => watcher.refused(err),
        metrics: this.metrics,
        logger: this.#log.child({ component: 'backfill' }),
      });
      watcher.start();
      this.#reconciler.start();
      this.#backfill.start();
    }
    const watcher = this.#watcher;
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
    if (this.#watcher) Object.assign(detail, { leader: this.#watcher.isLeader, lastError: this.#watcher.lastError ?? null });
    if (this.#reconciler) Object.assign(detail, { reconcileError: this.#reconciler.lastError ?? null });
    return { ok: redis.status === 'ready' && sourceRedis.status === 'ready', detail };
  }

  async status(): Promise<RegionStatus & { leader?: boolean }> {
    const status = await regionStatus(this.#region);
    if (status.lag) {
      if (status.lag.records !== null) this.metrics.lagRecords.set({ region: this.region }, status.lag.records);
      this.metrics.lagSeconds.set({ region: this.region }, status.lag.seconds);
    }
    for (const [state, n] of Object.entries(status.queue ?? {})) this.metrics.queueDepth.set({ region: this.region, state }, n);
    return this.#watcher ? { ...status, leader: this.#watcher.isLeader } : status;
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
    const watcherStopped = this.#watcher?.stop();
    const reconcilerStopped = this.#reconciler?.stop();
    const backfillStopped = this.#backfill?.stop();
    const maintenanceStopped = this.#maintenance?.stop();
    await this.#region.interruptSourceReads();
    await watcherStopped;
    await this.#warmRules?.stop();
    await reconcilerStopped;
    await backfillStopped;
    await maintenanceStopped;
    await this.#worker?.close();
    this.#workerRedis?.disconnect();
    await this.#warmWorker?.close();
    this.#warmRedis?.disconnect();
    await this.#warm?.close();
    await this.#region.close();
  }

  /** Drop every connection and close the workers without waiting for their jobs. */
  async #cutOff(): Promise<void> {
    this.#workerRedis?.disconnect();
    this.#warmRedis?.disconnect();
    this.#region.redis.disconnect();
    this.#region.sourceRedis.disconnect();
    const forced = Promise.allSettled([
      this.#worker?.close(true),
      this.#warmWorker?.close(true),
      this.#api?.server.closeAllConnections(),
      this.#region.close(),
      this.#page?.stop(),
    ]);
    // Closing itself may wait on a connection that is gone: give it a moment, not the process.
    await Promise.race([forced, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
  }
}
