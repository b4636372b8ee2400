import { coalesce, type Logger } from '@ferry/core';
import type { ChunkRefs } from '@ferry/meta';

const LIMITS = {
  /** Chunks renewed per script call (each call stays short). */
  renewBatch: 1000,
  /** How long a hold waits for garbage collection to finish deleting a chunk it has claimed. */
  claimWaitMs: 120_000,
} as const;

/**
 * The chunks a running put relies on, held against garbage collection (protocol:
 * @ferry/meta lua/hold.lua) from before the put looks at each one until it commits: GC neither
 * claims them from the unreferenced set nor sweeps them as orphans, however long the put takes.
 * Holds are renewed in the background; `held` is what the commit passes, undefined once a
 * renewal came too late (the holds may have lapsed, and the commit falls back to its `since`).
 * Holds are not released: after the commit the chunks are referenced, after a failure they
 * expire within the hold's time (`writer.holdTtl`) and age like any orphan.
 */
export class ChunkHolds {
  readonly #refs: ChunkRefs;
  readonly #ttlMs: number;
  readonly #log: Logger;
  readonly #ids = new Set<string>();
  #expiry: number | undefined;
  #lapsed = false;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  /** First holds of chunks asked for together go in one script call: a put of small files asks one per file. */
  readonly #holdOne: (id: string) => Promise<{ expiry: number; claimed: boolean }>;

  constructor(options: { refs: ChunkRefs; logger: Logger; ttlMs: number }) {
    this.#refs = options.refs;
    this.#ttlMs = options.ttlMs;
    this.#log = options.logger;
    this.#holdOne = coalesce(async (ids: string[]) => {
      const result = await this.#refs.hold(ids, this.#ttlMs);
      if (result.lapsed) throw new Error('a first hold cannot lapse');
      const claimed = new Set(result.claimed);
      return ids.map((id) => ({ expiry: result.expiry, claimed: claimed.has(id) }));
    }, LIMITS.renewBatch);
  }

  /** Hold a chunk before looking at the store for it; waits while GC has it claimed (being deleted). */
  async hold(id: string): Promise<void> {
    if (this.#ids.has(id)) return;
    for (;;) {
      const result = await this.#holdOne(id);
      if (!result.claimed) {
        this.#ids.add(id);
        this.#expiry = Math.min(this.#expiry ?? result.expiry, result.expiry);
        this.#startRenewing();
        return;
      }
      await this.#refs.waitUntilUnclaimed([id], LIMITS.claimWaitMs);
    }
  }

  /** The expiry to pass to the commit: every hold unbroken until then; undefined after a lapse. */
  get held(): number | undefined {
    return this.#lapsed ? undefined : this.#expiry;
  }

  /** Stop renewing (the put committed or failed). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#renewing;
  }

  #startRenewing(): void {
    if (this.#timer || this.#lapsed) return;
    this.#timer = setInterval(
      () => {
        this.#renewing ??= this.#renew().finally(() => {
          this.#renewing = undefined;
        });
      },
      Math.max(50, Math.floor(this.#ttlMs / 3)),
    );
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    const ids = [...this.#ids];
    let next: number | undefined;
    try {
      for (let i = 0; i < ids.length && this.#timer; i += LIMITS.renewBatch) {
        const result = await this.#refs.hold(ids.slice(i, i + LIMITS.renewBatch), this.#ttlMs, this.#expiry);
        if (result.lapsed) {
          // Too late: GC may have claimed one of them meanwhile. The commit checks `since` instead.
          this.#lapsed = true;
          clearInterval(this.#timer);
          this.#timer = undefined;
          this.#log.warn(
            { chunks: ids.length },
            'chunk holds lapsed (a renewal came too late); the commit checks what garbage collection deleted since the put began',
          );
          return;
        }
        // A chunk GC claimed cannot be claimed while held: a hold that never lapsed has none.
        next = Math.min(next ?? result.expiry, result.expiry);
      }
      if (next !== undefined) this.#expiry = next;
    } catch (err) {
      // Redis unreachable: the next tick tries again; if that is too late, the holds lapse.
      this.#log.warn({ err }, 'renewing chunk holds failed; trying again');
    }
  }
}
