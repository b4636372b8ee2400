import { type Logger, messageOf, silentLogger } from '@ferry/core';
import { type CacheMember, type Membership, type NodeInfo, parseNodeId } from '@ferry/meta';

export interface HeartbeatOptions {
  membership: Membership;
  id: string;
  /** Called before every beat: `used` changes all the time. */
  info: () => NodeInfo;
  /** Default 1 s; keep it well under the membership's staleMs. */
  intervalMs?: number;
  logger?: Logger;
}

/**
 * The node side: a beat every `intervalMs`, a clean leave on `stop()`. A failed beat is logged
 * once (not every second) and retried at the next tick; the node keeps serving meanwhile.
 */
export class Heartbeat {
  readonly #o: HeartbeatOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #failing = false;

  constructor(options: HeartbeatOptions) {
    this.#o = { ...options, id: parseNodeId(options.id) };
    this.#log = options.logger ?? silentLogger;
  }

  /** First beat now (its failure is thrown: a node that cannot register should say so), then the loop. */
  async start(): Promise<void> {
    await this.#o.membership.heartbeat(this.#o.id, this.#o.info());
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#beat().finally(() => {
        this.#running = undefined;
        this.#schedule();
      });
    }, this.#o.intervalMs ?? 1_000);
  }

  async #beat(): Promise<void> {
    try {
      await this.#o.membership.heartbeat(this.#o.id, this.#o.info());
      if (this.#failing) this.#log.info({ node: this.#o.id }, 'heartbeat recovered');
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#log.warn({ err, node: this.#o.id, reason: messageOf(err) }, 'heartbeat failed; retrying every interval');
      this.#failing = true;
    }
  }

  /** Stop beating and leave the membership, so clients stop asking this node right away. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    try {
      await this.#o.membership.leave(this.#o.id);
    } catch (err) {
      this.#log.warn({ err, node: this.#o.id }, 'could not leave the membership; the node will go stale instead');
    }
  }
}

/**
 * The client side: the live members, refreshed in the background every `refreshMs`, so asking
 * for the owners of a chunk never waits on Redis. A failed refresh keeps the last view (clients
 * remember dead nodes themselves, see CacheNodeClient).
 */
export class MembershipView {
  readonly #membership: Membership;
  readonly #refreshMs: number;
  readonly #log: Logger;
  #members: readonly CacheMember[] = [];
  #first: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: { membership: Membership; refreshMs?: number; logger?: Logger }) {
    this.#membership = options.membership;
    this.#refreshMs = options.refreshMs ?? 1_000;
    this.#log = options.logger ?? silentLogger;
  }

  /** The members as of the last refresh (empty before the first one). */
  get current(): readonly CacheMember[] {
    return this.#members;
  }

  /** The members, waiting for the first refresh if it has not happened yet; starts the loop. */
  async ready(): Promise<readonly CacheMember[]> {
    this.#first ??= this.refresh().then(() => this.#schedule());
    await this.#first;
    return this.#members;
  }

  async refresh(): Promise<void> {
    try {
      this.#members = await this.#membership.members();
    } catch (err) {
      this.#log.warn({ err, reason: messageOf(err) }, 'cannot refresh the cache membership; keeping the last view');
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.refresh().finally(() => this.#schedule()), this.#refreshMs);
    // A reader in a CLI process must be able to exit while the view is still refreshing.
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
