import { FencedError, type Logger, messageOf, type RegionConfig } from '@ferry/core';
import { Lease } from '@ferry/meta';
import { collectGarbage, type Region, verifyRegion } from '@ferry/region';
import { Throttle } from './throttle.js';

/** A scrub pass starts this long after the last one ended (its rate, not this pause, bounds the load). */
const SCRUB_PAUSE_MS = 60_000;

/** Thrown by a pass's `check` once the replica that started it no longer leads. */
export class LeadershipLost extends FencedError {
  constructor(task: string) {
    super(`${task}: this replica no longer leads the region; the pass stops here`);
  }
}

export interface MaintenanceOptions {
  /** Name in logs and errors ("gc", "scrub"). */
  task: string;
  /** Time between the end of one pass and the start of the next. */
  everyMs: number;
  /** The leader's fencing token, '' while this replica does not lead (then no pass starts). */
  token: () => string;
  /**
   * One pass. `check` throws LeadershipLost once the token the pass started with is gone, so a
   * paused replica whose lease was taken does not go on deleting next to the new leader.
   */
  run: (check: () => void) => Promise<void>;
  logger: Logger;
}

/**
 * Runs a region-wide pass (garbage collection, the background scrub) every `everyMs` on the
 * replica that leads the region, never on two at once: a replica that loses the lease mid-pass
 * stops at the pass's next step.
 */
export class Maintenance {
  readonly #o: MaintenanceOptions;
  #running: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;
  lastError: string | undefined;
  passes = 0;

  constructor(options: MaintenanceOptions) {
    this.#o = options;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#running;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  async #loop(): Promise<void> {
    const { task, logger } = this.#o;
    while (!this.#stopping) {
      await this.#sleep(this.#o.everyMs);
      const token = this.#o.token();
      if (this.#stopping || token === '') continue;
      const check = () => {
        if (this.#stopping || this.#o.token() !== token) throw new LeadershipLost(task);
      };
      try {
        await this.#o.run(check);
        this.passes += 1;
        this.lastError = undefined;
      } catch (err) {
        this.lastError = messageOf(err);
        if (err instanceof LeadershipLost) logger.info({ reason: err.message }, `${task} pass stopped`);
        else logger.warn({ err }, `${task} pass failed; the next one starts over`);
      }
    }
  }
}

/**
 * Leadership of a region with no watcher (the source): holds `lease` and renews it every third
 * of its time; `token` is '' while another replica holds it or a renewal failed.
 */
export class RegionLeader {
  readonly #lease: Lease;
  readonly #logger: Logger;
  #token = '';
  #at = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> | undefined;

  constructor(options: { lease: Lease; logger: Logger }) {
    this.#lease = options.lease;
    this.#logger = options.logger;
  }

  /** The fencing token while this replica leads and its lease is fresh. */
  get token(): string {
    // A renewal that has not come back within the lease's time means another may lead.
    return Date.now() - this.#at < this.#lease.ttlMs ? this.#token : '';
  }

  start(): void {
    const renew = () => {
      this.#busy ??= this.#lease
        .hold()
        .then((token) => {
          if ((token !== '') !== (this.#token !== '')) this.#logger.info({ leader: token !== '' }, 'region maintenance leadership');
          this.#token = token;
          this.#at = Date.now();
        })
        .catch((err: unknown) => {
          this.#token = '';
          this.#logger.warn({ reason: messageOf(err) }, 'could not renew the maintenance lease');
        })
        .finally(() => {
          this.#busy = undefined;
        });
    };
    renew();
    this.#timer = setInterval(renew, Math.max(50, Math.floor(this.#lease.ttlMs / 3)));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#busy;
    this.#token = '';
    await this.#lease.release().catch(() => {});
  }
}

export interface RegionMaintenance {
  stop(): Promise<void>;
}

/**
 * Garbage collection every `gc.every` (off when `gc` is absent) and the background scrub (off
 * when `scrub` is absent) on the replica that leads the region: the watcher's leader in a mirror
 * (`token`); in the source, which has no watcher, the holder of the same lease key, taken here.
 */
export function startMaintenance(o: {
  region: Region;
  own: RegionConfig;
  token?: () => string;
  leaseTtlMs: number;
  /** Pause between scrub passes (default a minute; tests shorten it). */
  scrubPauseMs?: number;
  logger: Logger;
}): RegionMaintenance | undefined {
  const { region, own } = o;
  const { gc, scrub } = own;
  if (!gc && !scrub) return undefined;
  let token = o.token;
  let leader: RegionLeader | undefined;
  if (!token) {
    const keys = region.meta.keys;
    const held = new RegionLeader({
      lease: new Lease({ redis: region.redis, key: keys.watcherLease, fenceKey: keys.fence, ttlMs: o.leaseTtlMs }),
      logger: o.logger.child({ component: 'leader' }),
    });
    held.start();
    leader = held;
    token = () => held.token;
  }
  const tasks: Maintenance[] = [];
  if (gc) {
    const logger = o.logger.child({ component: 'gc' });
    const run = async (check: () => void) => {
      await collectGarbage(region, { graceMs: gc.grace, check, logger });
    };
    tasks.push(new Maintenance({ task: 'gc', everyMs: gc.every, token, logger, run }));
  }
  if (scrub) {
    const logger = o.logger.child({ component: 'scrub' });
    // One bucket for every pass: the rate caps the store reads whatever the concurrency.
    const throttle = new Throttle(scrub.bytesPerSecond);
    const run = async (check: () => void) => {
      const report = await verifyRegion(region, { repair: true, throttle, check, logger });
      for (const b of report.bad) {
        const fields = { chunk: b.chunk, problem: b.problem, detail: b.detail, files: b.files.slice(0, 5) };
        if (b.repaired) logger.warn(fields, 'scrub repaired a chunk');
        else logger.error(fields, 'scrub found a bad chunk it could not repair');
      }
    };
    tasks.push(new Maintenance({ task: 'scrub', everyMs: o.scrubPauseMs ?? SCRUB_PAUSE_MS, token, logger, run }));
  }
  for (const task of tasks) task.start();
  return {
    async stop() {
      await Promise.all(tasks.map((t) => t.stop()));
      await leader?.stop();
    },
  };
}
