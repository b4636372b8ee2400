import { type FerryConfig, type Logger, messageOf, NotFoundError, normalizePath } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { openReader, openRegion, type Region } from '@ferry/region';
import { closeGracefully, listen } from '@ferry/runtime';
import type { ObjectStore } from '@ferry/stores';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { bindingReplies, FuseSession, type UnmountOutcome } from './fuse.js';
import { OpenFiles } from './handles.js';
import { Inodes } from './inodes.js';
import { createMetrics, type MountMetrics } from './metrics.js';
import { type MountpointState, prepareMountpoint, setReadAhead } from './mountpoint.js';
import { Namespace } from './namespace.js';
import { createOps } from './ops.js';

/** The kernel's read-ahead on the mount: at least this, and a chunk. */
const READ_AHEAD_MIN = 8 * 1024 * 1024;

export interface MountOptions {
  config: FerryConfig;
  /** The region whose metadata and tiers the mount reads (a mirror falls back to the source). */
  region: string;
  /** Local directory to mount on. */
  mountpoint: string;
  /** Volume directory shown as the mount's root (default `/`). */
  path?: string;
  logger: Logger;
  /** Detach a stale (or live) mount found on the mountpoint instead of refusing to start. */
  force?: boolean;
  /** Let other users read the mount (FUSE allow_other). */
  allowOther?: boolean;
  /** Bypass the kernel page cache: strict versions per open file, no shared mmap (see README). */
  directIo?: boolean;
  /** Metrics and health address (default `mount.listen`); false: none. */
  listen?: string | false;
  /** Bearer token for /metrics (the CLI reads FERRY_MOUNT_METRICS_TOKEN). */
  metricsToken?: string;
  /** Export the process metrics too (on for the mount process, off in tests). */
  processMetrics?: boolean;
  /** Stores to use instead of those the config names (tests). */
  stores?: { region?: ObjectStore; source?: ObjectStore };
}

export interface StopResult {
  outcome: UnmountOutcome;
  /** Files still open when the stop gave up waiting on them (a busy mount). */
  stillOpen: number;
}

/**
 * `ferry mount`: the volume of one region as a read-only FUSE file system. `start()` checks the
 * mountpoint (a stale mount is an error, or detached with `force`), the region's Redis and the
 * directory shown, then mounts; `stop()` unmounts — a busy mount is reported, detached lazily,
 * and its open files are served until they are closed or `mount.stopTimeout` has passed.
 */
export class MountService {
  readonly region: string;
  readonly reader: RegionReader;
  readonly files: OpenFiles;
  /** The inodes the kernel holds: one per directory, one per version of each file. */
  readonly inodes = new Inodes();
  readonly metrics: MountMetrics;
  mountpoint: string;
  address: string | undefined;
  /** What `start()` found on the mountpoint and detached (with `force`). */
  cleared: MountpointState | undefined;
  readonly #o: MountOptions;
  readonly #region: Region;
  readonly #log: Logger;
  readonly #namespace: Namespace;
  #session: FuseSession | undefined;
  #app: FastifyInstance | undefined;

  constructor(options: MountOptions) {
    const { config, region } = options;
    this.#o = options;
    this.region = region;
    this.mountpoint = options.mountpoint;
    this.#log = options.logger.child({ component: 'mount', region, volume: config.volume });
    // A client's Redis: a call during an outage fails within a second (EIO) instead of hanging the caller.
    this.#region = openRegion({
      config,
      region,
      role: 'client',
      logger: options.logger.child({ component: 'mount', volume: config.volume }),
      clientName: 'ferry-mount',
      ...(options.stores ? { stores: options.stores } : {}),
    });
    const prefetch = config.reader.prefetch;
    // Read-ahead lands in the reader's memory cache, so it must hold the window of a few readers.
    this.reader = openReader(this.#region, { memoryBytes: Math.max(config.reader.memoryBytes, (prefetch + 2) * 2 * config.chunkSize) });
    this.files = new OpenFiles({ fetch: this.reader.fetch, prefetch, logger: this.#log });
    this.#namespace = new Namespace({
      meta: this.#region.meta,
      base: normalizePath(options.path ?? '/'),
      ttlMs: config.mount.attrTimeout,
    });
    this.metrics = createMetrics({
      volume: config.volume,
      region,
      tiers: this.reader.chunks,
      openFiles: () => this.files.size,
      processMetrics: options.processMetrics ?? false,
    });
  }

  async start(): Promise<void> {
    const { config } = this.#o;
    const prepared = await prepareMountpoint(this.#o.mountpoint, this.#o.force ?? false);
    this.mountpoint = prepared.path;
    this.cleared = prepared.cleared;
    if (prepared.cleared)
      this.#log.warn({ mountpoint: prepared.path, found: prepared.cleared.kind }, 'detached what was mounted here (--force)');
    await this.#region.ready();
    const base = this.#namespace.base;
    if (base !== '/' && (await this.#namespace.lookup('/'))?.kind !== 'dir') {
      throw new NotFoundError(`--path ${base}: no such directory in volume "${config.volume}" (region ${this.region})`);
    }
    const session = new FuseSession({
      mountpoint: this.mountpoint,
      handler: createOps({
        namespace: this.#namespace,
        inodes: this.inodes,
        files: this.files,
        replies: bindingReplies(),
        metrics: this.metrics,
        logger: this.#log,
        attrTimeoutMs: config.mount.attrTimeout,
        opTimeoutMs: config.mount.opTimeout,
        directIo: this.#o.directIo ?? false,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        mountedAt: new Date(),
      }),
      mount: { fsname: `ferry:${config.volume}`, allowOther: this.#o.allowOther ?? false },
    });
    session.mount();
    this.#session = session;
    const readAhead = Math.max(READ_AHEAD_MIN, config.chunkSize);
    if (!(this.#o.directIo ?? false) && !(await setReadAhead(this.mountpoint, readAhead)))
      this.#log.info(
        { mountpoint: this.mountpoint },
        'kernel read-ahead left at its default (read_ahead_kb not writable): sequential reads are slower',
      );
    this.#log.info({ mountpoint: this.mountpoint, path: base, directIo: this.#o.directIo ?? false }, 'mounted');
    const address = this.#o.listen ?? config.mount.listen;
    if (address) {
      this.#app = buildApp({
        registry: this.metrics.registry,
        open: config.mount.open,
        ...(this.#o.metricsToken ? { token: this.#o.metricsToken } : {}),
        health: async () => {
          try {
            await this.#region.redis.ping();
            return { ok: true, detail: { mountpoint: this.mountpoint, openFiles: this.files.size } };
          } catch (err) {
            return { ok: false, detail: { redis: messageOf(err) } };
          }
        },
      });
      this.address = (await listen(this.#app, address)).url;
    }
  }

  /**
   * Unmount. A busy mount (a process has a file open or its working directory inside) is
   * reported, detached lazily, and its open files are served until closed or stopTimeout.
   */
  async stop(): Promise<StopResult> {
    let outcome: UnmountOutcome = { kind: 'unmounted' };
    let stillOpen = 0;
    const session = this.#session;
    this.#session = undefined;
    if (session) {
      try {
        outcome = await session.unmount();
      } catch (err) {
        // Unmounted by someone else (fusermount -u by hand): nothing is left to unmount.
        this.#log.warn({ mountpoint: this.mountpoint, reason: messageOf(err) }, 'unmount failed; was it unmounted already?');
      }
      if (outcome.kind === 'detached') {
        this.#log.warn(
          { mountpoint: this.mountpoint, openFiles: this.files.size, reason: outcome.reason },
          'mount busy: detached lazily; open files are served until they are closed or mount.stopTimeout passes',
        );
        stillOpen = await this.#drain(this.#o.config.mount.stopTimeout);
      }
      session.release();
      this.#log.info({ mountpoint: this.mountpoint, outcome: outcome.kind, stillOpen }, 'unmounted');
    }
    if (this.#app) await closeGracefully(this.#app, { graceMs: 1000 });
    await this.#region.close();
    return { outcome, stillOpen };
  }

  /** Wait for the open files to be closed, at most `ms`; returns how many are still open. */
  async #drain(ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    while (this.files.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return this.files.size;
  }
}
