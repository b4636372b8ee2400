import type { Logger, RegionConfig } from '@ferry/core';
import { Lease } from '@ferry/meta';
import { collectGarbage, type Region, verifyRegion } from '@ferry/region';
import { LeaderLoop } from './leader-loop.js';
import { Throttle } from './throttle.js';

/** A scrub pass starts this long after the last one ended (its rate, not this pause, bounds the load). */
const SCRUB_PAUSE_MS = 60_000;

export { LeadershipLost } from './leader-loop.js';

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
 * stops at the pass's next step. A failed pass is tried again a period later.
 */
export class Maintenance {
  readonly #loop: LeaderLoop;

  constructor(options: MaintenanceOptions) {
    this.#loop = new LeaderLoop({
      task: options.task,
      follow: options.token,
      firstDelayMs: options.everyMs,
      retry: { periodMs: options.everyMs },
      step: async (_token, check) => {
        await options.run(check);
        return options.everyMs;
      },
      logger: options.logger,
    });
  }

  get lastError(): string | undefined {
    return this.#loop.lastError;
  }

  get passes(): number {
    return this.#loop.passes;
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }
}

/**
 * Leadership of a region with no watcher (the source): holds `lease`, renewed every third of its
 * time; `token` is '' while another replica holds it or a renewal did not come back in time.
 */
export function regionLeader(options: { lease: Lease; logger: Logger }): LeaderLoop {
  return new LeaderLoop({
    task: 'region maintenance',
    lease: options.lease,
    retry: 'backoff',
    step: async () => Math.max(50, Math.floor(options.lease.ttlMs / 3)),
    logger: options.logger,
  });
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
  let leader: LeaderLoop | undefined;
  if (!token) {
    const keys = region.meta.keys;
    const held = regionLeader({
      lease: new Lease({
        redis: region.redis,
        key: keys.watcherLease,
        fenceKey: keys.fence,
        endKey: keys.watcherLeaseEnd,
        ttlMs: o.leaseTtlMs,
      }),
      logger: o.logger.child({ component: 'leader' }),
    });
    held.start();
    leader = held;
    token = () => held.token;
  }
  const tasks: Maintenance[] = [];
  if (gc) {
    const logger = o.logger.child({ component: 'gc' });
    const current = token;
    const run = async (check: () => void) => {
      // The pass's claims check this token against the one in Redis, not only the one cached here.
      await collectGarbage(region, { graceMs: gc.grace, check, logger, token: current() });
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
