import type { FencedError, Logger, RegionConfig } from '@ferry/core';
import { COPY_JOB, type CopyQueue, QUEUES, queuePrefix } from '@ferry/jobs';
import { duplicateConnection, Lease, type RedisClient } from '@ferry/meta';
import type { Region } from '@ferry/region';
import { type Job, Worker } from 'bullmq';
import { Backfill } from './backfill.js';
import { copyJobHandler, createCopyProcessor, THROTTLED_BATCH_CONCURRENCY } from './copy-worker.js';
import { COPY_WORKER_LOCKS, isFinalFailure } from './job-workers.js';
import type { Metrics } from './metrics.js';
import { Reconciler } from './reconciler.js';
import { Throttle } from './throttle.js';
import { Watcher } from './watcher.js';

export interface MirrorLoopsOptions {
  /** A mirror region (its `mirror` metadata is set). */
  region: Region;
  own: RegionConfig;
  volume: string;
  leaseTtlMs: number;
  /** Watcher tuning from the daemon's options. */
  watcher?: { blockMs?: number; batch?: number; resyncPageSize?: number };
  copies: CopyQueue;
  /** True once the daemon is stopping: a batch job starts no more chunks. */
  stopping: () => boolean;
  metrics: Metrics;
  logger: Logger;
}

/**
 * What a mirror's daemon runs to follow the source: the copy worker (every replica), and the
 * watcher, its reconciler and the backfill loop (the one replica that holds the watcher lease).
 */
export class MirrorLoops {
  readonly watcher: Watcher;
  readonly reconciler: Reconciler;
  readonly #backfill: Backfill;
  readonly #worker: Worker;
  /** BullMQ does not close connections it is given, so this one is kept and closed here. */
  readonly #workerRedis: RedisClient;

  private constructor(parts: { watcher: Watcher; reconciler: Reconciler; backfill: Backfill; worker: Worker; workerRedis: RedisClient }) {
    this.watcher = parts.watcher;
    this.reconciler = parts.reconciler;
    this.#backfill = parts.backfill;
    this.#worker = parts.worker;
    this.#workerRedis = parts.workerRedis;
  }

  static start(o: MirrorLoopsOptions): MirrorLoops {
    const r = o.region;
    const { own, copies } = o;
    const region = r.name;
    const mirror = r.mirror;
    if (!mirror) throw new Error(`region ${region} is not a mirror`);
    const redis = r.redis;
    const processor = createCopyProcessor({
      region,
      source: r.sourceStore,
      target: r.store,
      originStore: (url) => r.origins.open(url),
      presence: mirror,
      hashes: r.hashes,
      ...(own.copy.bytesPerSecond ? { throttle: new Throttle(own.copy.bytesPerSecond) } : {}),
      metrics: o.metrics,
      logger: o.logger.child({ component: 'copy' }),
    });
    const workerRedis = duplicateConnection(redis, `ferry-replicator-${region}-copy`, { maxRetriesPerRequest: null });
    const handle = copyJobHandler(
      processor,
      mirror,
      o.logger.child({ component: 'copy' }),
      o.stopping,
      ...(own.copy.bytesPerSecond ? [THROTTLED_BATCH_CONCURRENCY] : []),
    );
    const worker = new Worker(QUEUES.copy, handle, {
      connection: workerRedis,
      prefix: queuePrefix(o.volume),
      concurrency: own.copy.concurrency,
      autorun: true,
      ...COPY_WORKER_LOCKS,
    });
    // A batch job that ended no longer holds its chunks: a producer looking for their jobs finds none.
    const settle = (job: Job | undefined) => {
      if (job?.name !== COPY_JOB.batch) return;
      const chunks = (job.data as { chunks?: Array<{ chunk: string }> }).chunks ?? [];
      copies.settleBatch(chunks.map((c) => c.chunk)).catch((err: unknown) => o.logger.warn({ err }, 'could not settle a copy batch'));
    };
    worker.on('completed', settle);
    worker.on('failed', (job, err) => {
      o.metrics.copyFailures.inc({ region });
      const final = isFinalFailure(job, err);
      if (final) settle(job);
      o.logger[final ? 'error' : 'warn'](
        { err, chunk: job?.id, attempt: job?.attemptsMade },
        final ? 'copy failed; the reconciler queues it again on its next pass' : 'copy failed; will retry',
      );
    });
    worker.on('error', (err) => o.logger.warn({ err }, 'copy worker error'));
    const watcher = new Watcher({
      region,
      source: r.sourceMeta,
      mirror,
      lease: new Lease({
        redis,
        key: mirror.keys.watcherLease,
        fenceKey: mirror.keys.fence,
        endKey: mirror.keys.watcherLeaseEnd,
        ttlMs: o.leaseTtlMs,
      }),
      copies,
      metrics: o.metrics,
      logger: o.logger.child({ component: 'watcher' }),
      ...o.watcher,
      onBacklogDeferred: () => reconciler.wake(),
    });
    // What the loops that queue copies share: the mirror's state, and the watcher's fencing token.
    const queueing = {
      region,
      meta: r.meta,
      mirror,
      copies,
      token: () => watcher.token,
      onFenced: (err: FencedError) => watcher.refused(err),
      metrics: o.metrics,
    };
    const reconciler = new Reconciler({
      ...queueing,
      everyMs: own.copy.reconcileEvery,
      fullEveryMs: own.copy.fullReconcileEvery,
      logger: o.logger.child({ component: 'reconcile' }),
    });
    const backfill = new Backfill({ ...queueing, logger: o.logger.child({ component: 'backfill' }) });
    watcher.start();
    reconciler.start();
    backfill.start();
    return new MirrorLoops({ watcher, reconciler, backfill, worker, workerRedis });
  }

  /** Stop the loops (the watcher's waiting read ends once the source reads are interrupted). */
  stopLoops(): Promise<unknown> {
    return Promise.all([this.watcher.stop(), this.reconciler.stop(), this.#backfill.stop()]);
  }

  /** Let the copies in flight finish, then close the worker and its connection. */
  async closeWorker(): Promise<void> {
    await this.#worker.close();
    this.#workerRedis.disconnect();
  }

  /** Drop the worker's connection and close it without waiting for its jobs (the stop deadline passed). */
  cutOff(): Promise<void> {
    this.#workerRedis.disconnect();
    return this.#worker.close(true);
  }
}
