import { type Entry, isWithin, type Logger, messageOf, NotFoundError, UnavailableError, type WarmRule } from '@ferry/core';
import { type ChangeRecord, type Lease, type LogPosition, type Meta, needsResync } from '@ferry/meta';
import { LeaderLoop } from './leader-loop.js';
import type { Metrics } from './metrics.js';
import type { WarmFlows } from './warmup.js';

export interface WarmRulesOptions {
  region: string;
  rules: readonly WarmRule[];
  /** The source's metadata and change log, on a Meta of its own (its blocking reads must not wait behind the watcher's). */
  source: Meta;
  /** Where the rules got to in the source's log, kept in this region's Redis. */
  position: LogPosition;
  lease: Lease;
  flows: WarmFlows;
  metrics: Metrics;
  logger: Logger;
  /** How long one read waits for new records (default 1000 ms). */
  blockMs?: number;
}

/** Entries of `entries` under a rule, grouped by owners per chunk (a file under two rules takes the larger). */
export function matchRules(rules: readonly WarmRule[], entries: readonly Entry[]): Map<number, { entries: Entry[]; rules: Set<string> }> {
  const groups = new Map<number, { entries: Entry[]; rules: Set<string> }>();
  for (const entry of entries) {
    const matching = rules.filter((rule) => isWithin(entry.path, rule.path));
    if (matching.length === 0) continue;
    const replicas = Math.max(...matching.map((rule) => rule.replicas));
    const group = groups.get(replicas) ?? { entries: [], rules: new Set<string>() };
    group.entries.push(entry);
    for (const rule of matching) group.rules.add(rule.path);
    groups.set(replicas, group);
  }
  return groups;
}

/**
 * The warm rules of a region (`warm: [{ path, replicas }]`): every file a change record of the
 * source puts under a rule's path is queued as a warmup flow (WarmFlows), with no one asking.
 * In a mirror the fill jobs wait for the copy (the warm worker delays them until the chunk is
 * present), so the chunks land on the cache nodes right after they land in the region; in the
 * source, right after the commit. One replica follows (a lease); where it got to is a cursor in
 * this region's Redis, moved after the flows are queued, and each record's flow has an id of its
 * own (`wr-<record id>-r<replicas>`), so a crash in between queues nothing twice. With no cursor
 * (first start) or a log trimmed past it, every file under the rules is warmed once, then the log
 * is followed from the id taken before that snapshot.
 */
export class WarmRules {
  readonly #o: WarmRulesOptions;
  readonly #blockMs: number;
  readonly #loop: LeaderLoop;

  constructor(options: WarmRulesOptions) {
    this.#o = options;
    this.#blockMs = Math.max(1, Math.min(options.blockMs ?? 1000, Math.floor(options.lease.ttlMs / 3)));
    this.#loop = new LeaderLoop({
      task: 'warm rules',
      lease: options.lease,
      retry: 'backoff',
      step: async () => {
        await this.#step();
        return 0;
      },
      logger: options.logger,
    });
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    // Closing the source's blocking reads first cuts a waiting read short.
    await this.#o.source.close();
    await this.#loop.stop();
  }

  /** One read of the source's log after the cursor (or the first snapshot), and the flows it calls for. */
  async #step(): Promise<void> {
    const { source, position } = this.#o;
    const cursor = await position.get();
    if (cursor === undefined || needsResync(cursor, await source.log.logBounds())) {
      await this.#snapshot(cursor === undefined ? 'first start' : `the change log was trimmed past ${cursor}`);
      return;
    }
    const records = await source.log.readChanges(cursor, { count: 100, blockMs: this.#blockMs });
    if (records.length === 0 || this.#loop.stopping) return;
    for (const record of records) await this.#warm(record);
    await this.#setCursor((records.at(-1) as ChangeRecord).id);
  }

  async #setCursor(id: string): Promise<void> {
    // Only a leader moves the cursor: one that lost the lease meanwhile leaves it to the next.
    if (!(await this.#o.lease.hold())) return;
    await this.#o.position.set(id);
  }

  async #warm(record: ChangeRecord): Promise<void> {
    for (const [replicas, group] of matchRules(this.#o.rules, record.put)) {
      await this.#queue(`wr-${record.id}-r${replicas}`, group.entries, replicas, [...group.rules]);
    }
  }

  async #queue(id: string, entries: Entry[], replicas: number, rules: string[]): Promise<void> {
    const paths = entries.map((e) => e.path);
    try {
      const queued = await this.#o.flows.enqueue({ id, paths, entries, replicas, rule: rules.join(',') });
      this.#o.metrics.warmRuleWarmups.inc({ region: this.#o.region });
      this.#o.logger.info(
        { id, rules, files: paths.length, chunks: queued.chunks, placements: queued.placements },
        'warm rule queued a warmup',
      );
    } catch (err) {
      // Nothing to warm onto: the change is passed over (nodes that join later are not filled).
      if (!(err instanceof UnavailableError)) throw err;
      this.#o.logger.warn({ id, rules, files: paths.length, reason: messageOf(err) }, 'warm rule could not queue a warmup');
    }
  }

  /** Warm every file under the rules as the source has them now, then follow the log from before that. */
  async #snapshot(reason: string): Promise<void> {
    const { source, rules, logger } = this.#o;
    const snapshot = await source.log.snapshotId();
    logger.info({ reason, snapshot }, 'warm rules: warming every file under the rules once');
    const entries: Entry[] = [];
    for (const rule of rules) {
      const found = await source.filesUnder(rule.path).catch((err: unknown) => {
        if (err instanceof NotFoundError) return [];
        throw err;
      });
      for (const entry of found) entries.push(entry);
    }
    const unique = [...new Map(entries.map((e) => [e.path, e])).values()];
    for (const [replicas, group] of matchRules(rules, unique)) {
      await this.#queue(`wr-${snapshot}-all-r${replicas}`, group.entries, replicas, [...group.rules]);
    }
    await this.#setCursor(snapshot);
  }
}
