import { FencedError, type Logger, messageOf, Pause } from '@ferry/core';
import type { Lease } from '@ferry/meta';

/** Thrown by a step's `check` once the loop no longer leads with the token the step started with, or is stopping. */
export class LeadershipLost extends FencedError {
  constructor(task: string) {
    super(`${task}: this replica no longer leads the region; the pass stops here`);
  }
}

export interface LeaderLoopOptions {
  /** Name in logs and errors ("watcher", "gc"). */
  task: string;
  /**
   * How the loop leads: it holds `lease` itself (taken, then renewed whenever a third of its time
   * has passed, before a step), or it follows `follow` — another loop's token, '' while that one
   * does not lead. Exactly one of the two.
   */
  lease?: Lease;
  follow?: () => string;
  /**
   * One step while leading, with the fencing token it leads with and a `check` that throws
   * LeadershipLost once that token is gone. Returns how long to wait before the next step (0 or
   * nothing: at once); `wake()` cuts the wait short.
   */
  step: (token: string, check: () => void) => Promise<number | undefined>;
  /** Wait before the first step (a periodic pass that should not run at start). Default 0. */
  firstDelayMs?: number;
  /** How a failed step is retried: after a backoff doubling from 200 ms to 5 s, or after `periodMs`. */
  retry: 'backoff' | { periodMs: number };
  /** A write refused by its fencing token: the loop has stepped down; count it. */
  onFenced?: (err: FencedError) => void;
  /** Told when this loop starts or stops leading (a held lease only). */
  onLeadership?: (leading: boolean) => void;
  logger: Logger;
}

const BACKOFF_START_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** A replica that does not lead looks again this often (at most; sooner for short leases). */
const IDLE_MS = 1_000;

/**
 * The loop under every daemon task that must run on one replica of a region at a time (the
 * watcher, the warm rules, the reconciler, garbage collection, the scrub, and the source's region
 * leadership): take or follow leadership, run a step with its fencing token, wait, again. A step
 * that fails is retried with a backoff or after its period; a write refused by the fence, or a
 * lost lease, steps down at once and logs it once. `stop()` ends the wait at once, lets the step
 * in flight end, and gives a held lease back.
 */
export class LeaderLoop {
  readonly #o: LeaderLoopOptions;
  readonly #pause = new Pause();
  #running: Promise<void> | undefined;
  #stopping = false;
  #token = '';
  #heldAt = 0;
  /** Woken while a step ran: the next wait is skipped. */
  #woken = false;
  lastError: string | undefined;
  /** Steps that ended without an error. */
  passes = 0;

  constructor(options: LeaderLoopOptions) {
    if ((options.lease === undefined) === (options.follow === undefined)) {
      throw new Error(`${options.task}: a leader loop either holds a lease or follows another loop`);
    }
    this.#o = options;
  }

  /** The fencing token while this loop leads ('' otherwise; a held lease not renewed within its time counts as lost). */
  get token(): string {
    const { lease, follow } = this.#o;
    if (follow) return follow();
    return this.#token !== '' && Date.now() - this.#heldAt < (lease as Lease).ttlMs ? this.#token : '';
  }

  get isLeader(): boolean {
    return this.token !== '';
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Run the next step now (new work, or chunks left out of a full queue). */
  wake(): void {
    this.#woken = true;
    this.#pause.wake();
  }

  /** Stop after the step in flight (a wait ends at once) and give a held lease back. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pause.wake();
    await this.#running;
    if (this.#o.lease) {
      const held = this.#token !== '';
      // Released whatever this replica believes: the script only deletes a lease this owner holds.
      await this.#o.lease.release().catch(() => {});
      if (held) this.#o.logger.info(`${this.#o.task}: gave the lease back; another replica may lead now`);
      this.stepDown();
    }
  }

  /** Stop leading (a step found the lease gone); the loop takes or follows it again. */
  stepDown(reason?: string): void {
    if (this.#token === '') return;
    if (!this.#stopping) this.#o.logger.info({ reason }, `${this.#o.task}: stepped down; another replica may lead now`);
    this.#token = '';
    this.#o.onLeadership?.(false);
  }

  /** A write of this loop's was refused by its fencing token: count it and step down. */
  refused(err: FencedError): void {
    this.#o.onFenced?.(err);
    this.#o.logger.warn({ reason: err.message }, `${this.#o.task}: a write was refused: another replica took the lease; stepping down`);
    this.stepDown(err.message);
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping || ms <= 0) return Promise.resolve();
    return this.#pause.sleep(ms);
  }

  /** Take or renew a held lease when a third of its time has passed; the token to lead with, '' when another replica leads. */
  async #lead(): Promise<string> {
    const { lease, follow } = this.#o;
    if (follow) return follow();
    const held = lease as Lease;
    const now = Date.now();
    if (this.#token !== '' && now - this.#heldAt < held.ttlMs / 3) return this.#token;
    const token = await held.hold();
    if ((token !== '') !== (this.#token !== '')) {
      this.#o.logger.info(
        { leader: token !== '', token },
        token ? `${this.#o.task} leads in this region` : `another replica leads ${this.#o.task}`,
      );
      this.#o.onLeadership?.(token !== '');
    }
    this.#token = token;
    this.#heldAt = now;
    return token;
  }

  async #loop(): Promise<void> {
    const { task, logger, retry } = this.#o;
    const idleMs = Math.min(IDLE_MS, this.#o.lease ? this.#o.lease.ttlMs / 3 : IDLE_MS);
    let failures = 0;
    await this.#sleep(this.#o.firstDelayMs ?? 0);
    while (!this.#stopping) {
      let wait: number;
      try {
        const token = await this.#lead();
        if (this.#stopping) break;
        if (token === '') {
          await this.#sleep(idleMs);
          continue;
        }
        const check = () => {
          if (this.#stopping || this.token !== token) throw new LeadershipLost(task);
        };
        this.#woken = false;
        wait = (await this.#o.step(token, check)) ?? 0;
        if (this.#woken) wait = 0;
        failures = 0;
        this.passes += 1;
        this.lastError = undefined;
      } catch (err) {
        if (this.#stopping) break;
        if (err instanceof LeadershipLost) {
          logger.info({ reason: err.message }, `${task}: pass stopped`);
          this.stepDown(err.message);
          continue;
        }
        if (err instanceof FencedError) {
          this.refused(err);
          continue;
        }
        failures += 1;
        this.lastError = messageOf(err);
        // Another replica may lead by the time this one is back: take the lease anew.
        if (this.#o.lease) this.stepDown(this.lastError);
        logger.warn({ err, failures }, `${task} step failed; retrying`);
        wait = retry === 'backoff' ? Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** Math.min(failures, 5)) : retry.periodMs;
      }
      await this.#sleep(wait);
    }
  }
}
