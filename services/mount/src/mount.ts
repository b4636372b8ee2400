import { type FerryConfig, type Logger, messageOf, NotFoundError, normalizePath } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { openReader, openRegion, type Region } from '@ferry/region';
import { closeGracefully } from '@ferry/runtime';
import type { ObjectStore } from '@ferry/stores';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { type ListenSetting, serveEndpoint } from './endpoint.js';
import { bindingReplies, FuseSession, type UnmountOutcome } from './fuse.js';
import { OpenFiles } from './handles.js';
import { Inodes } from './inodes.js';
import { createMetrics, type MountMetrics } from './metrics.js';
import { type MountpointState, mountAt, prepareMountpoint, setReadAhead } from './mountpoint.js';
import { Namespace } from './namespace.js';
import { createOps } from './ops.js';

/** How long a stop waits for the binding's thread to end after an unmount (it takes milliseconds). */
const EXIT_WAIT_MS = 2000;

/** Wait for `promise`, at most `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

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

/** What a stop found: what the unmount did, or `outside`: it was unmounted from outside (fusermount -u, umount). */
export type StopOutcome = UnmountOutcome | { kind: 'outside' };

export interface StopResult {
  outcome: StopOutcome;
  /** Files still open when the stop gave up waiting on them (a busy mount). */
  stillOpen: number;
}

/**
 * `ferry mount`: the volume of one region as a read-only FUSE file system. `start()` checks the
 * mountpoint (a stale mount is an error, or detached with `force`), the region's Redis and the
 * directory shown, binds the metrics address, then mounts; `stop()` unmounts — a busy mount is
 * reported, detached lazily, and its open files are served until the last is closed (the kernel
 * then ends the session) or `mount.stopTimeout` has passed. A mount unmounted from outside
 * settles `unmountedOutside`; its owner then stops it.
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
  /** The default metrics address, when it was busy and `address` is a free port instead. */
  addressBusy: string | undefined;
  /**
   * Settles when the FUSE session ended while the mount was not stopping: unmounted from outside
   * (fusermount -u, umount), or (rarely) libfuse's loop failed; either way the owner stops it.
   */
  readonly unmountedOutside: Promise<void>;
  #outside: () => void = () => {};
  #stopping = false;
  /** The kernel's device number of this mount (mountinfo), to tell it from whatever is mounted there later. */
  #device: string | undefined;
  /** The session ended while the mount was still in place (libfuse's loop failed): stop() unmounts it. */
  #orphaned = false;
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
    this.unmountedOutside = new Promise((resolve) => {
      this.#outside = resolve;
    });
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
    // Read-ahead lands in the reader's memory cache, on probation until the kernel asks for it:
    // probation must hold the window of a couple of readers.
    const readAhead = (prefetch + 2) * 2 * config.chunkSize;
    this.reader = openReader(this.#region, {
      memoryBytes: Math.max(config.reader.memoryBytes, 2 * readAhead),
      memoryProbationBytes: readAhead,
    });
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
    // Bound before mounting: a busy address fails the start before anything shows on the mountpoint.
    await this.#serve();
    // Once nothing of the command line is wrong: a bad argument is one line and nothing else.
    await this.#region.checkAccess('reader');
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
      onHandlerError: (err) => this.#log.error({ reason: messageOf(err) }, 'FUSE request handler failed'),
    });
    session.mount();
    this.#session = session;
    this.#device = (await mountAt(this.mountpoint))?.device;
    void session.exited.then(async () => {
      if (this.#stopping) return;
      const still = await mountAt(this.mountpoint);
      if (this.#stopping) return;
      this.#orphaned = this.#device !== undefined && still?.device === this.#device;
      if (this.#orphaned) this.#log.error({ mountpoint: this.mountpoint }, 'the FUSE session ended while mounted: stopping');
      else this.#log.info({ mountpoint: this.mountpoint }, 'unmounted from outside (fusermount -u or umount): stopping');
      this.#outside();
    });
    const readAhead = Math.max(READ_AHEAD_MIN, config.chunkSize);
    if (!(this.#o.directIo ?? false) && !(await setReadAhead(this.mountpoint, readAhead)))
      this.#log.info(
        { mountpoint: this.mountpoint },
        'kernel read-ahead left at its default (read_ahead_kb not writable): sequential reads are slower',
      );
    this.#log.info({ mountpoint: this.mountpoint, path: base, directIo: this.#o.directIo ?? false }, 'mounted');
  }

  /** /metrics and /healthz on the address asked for (`listen`, else `mount.listen`, else the default). */
  async #serve(): Promise<void> {
    const { config } = this.#o;
    const wanted = this.#o.listen ?? config.mount.listen;
    if (wanted === false) return;
    const setting: ListenSetting =
      wanted === undefined ? { from: 'default' } : { from: this.#o.listen === undefined ? 'config' : 'flag', address: wanted };
    const make = () =>
      buildApp({
        registry: this.metrics.registry,
        open: config.mount.open,
        ...(this.#o.metricsToken ? { token: this.#o.metricsToken } : {}),
        health: async () => {
          const mounted = this.#session !== undefined && !this.#session.ended;
          try {
            await this.#region.ping();
            return { ok: mounted, detail: { mountpoint: this.mountpoint, mounted, openFiles: this.files.size } };
          } catch (err) {
            return { ok: false, detail: { mounted, redis: messageOf(err) } };
          }
        },
      });
    const endpoint = await serveEndpoint(make, setting, this.#log);
    this.#app = endpoint.app;
    this.address = endpoint.url;
    this.addressBusy = endpoint.busy;
  }

  /**
   * Unmount. A busy mount (a process has a file open or its working directory inside) is
   * reported, detached lazily, and its open files are served until the last one is closed or
   * stopTimeout has passed. A mount unmounted from outside has nothing left to unmount.
   */
  async stop(): Promise<StopResult> {
    this.#stopping = true;
    let outcome: StopOutcome = { kind: 'unmounted' };
    let stillOpen = 0;
    const session = this.#session;
    this.#session = undefined;
    if (session?.ended && !this.#orphaned) {
      outcome = { kind: 'outside' };
      session.release();
    } else if (session) {
      try {
        outcome = await session.unmount();
      } catch (err) {
        // Unmounted by someone else between the check above and now: nothing is left to unmount.
        this.#log.warn({ mountpoint: this.mountpoint, reason: messageOf(err) }, 'unmount failed; was it unmounted already?');
      }
      if (outcome.kind === 'detached') {
        this.#log.warn(
          { mountpoint: this.mountpoint, openFiles: this.files.size, reason: outcome.reason },
          'mount busy: detached lazily; open files are served until they are closed or mount.stopTimeout passes',
        );
        stillOpen = await this.#drain(session, this.#o.config.mount.stopTimeout);
      } else {
        // The binding's thread ends right after the unmount; the process must not exit under it.
        await within(session.exited, EXIT_WAIT_MS);
      }
      session.release();
      this.#log.info({ mountpoint: this.mountpoint, outcome: outcome.kind, stillOpen }, 'unmounted');
    }
    if (this.#app) await closeGracefully(this.#app, { graceMs: 1000 });
    await this.#region.close();
    return { outcome, stillOpen };
  }

  /**
   * Serve a detached mount's open files until the last is closed, at most `ms`; returns how many
   * are still open. When the last file of a detached mount is closed the kernel ends the session
   * (libfuse's loop returns) and may drop the releases still queued, so the end of the session
   * counts as every file closed.
   */
  async #drain(session: FuseSession, ms: number): Promise<number> {
    let poll: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((resolve) => {
      const check = () => {
        if (this.files.size === 0) resolve();
        else poll = setTimeout(check, 50);
      };
      check();
    });
    await within(Promise.race([closed, session.exited]), ms);
    clearTimeout(poll);
    return session.ended ? 0 : this.files.size;
  }
}
