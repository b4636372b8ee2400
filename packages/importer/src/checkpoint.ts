import type { ImportCheckpointStore, Meta } from '@ferry/meta';
import type { SkipReason } from './keys.js';

/** What an import has done so far; kept in the checkpoint so a resumed run reports the whole import. */
export interface ImportCounts {
  listed: number;
  new: number;
  changed: number;
  unchanged: number;
  deleted: number;
  skipped: number;
  skippedBy: Partial<Record<SkipReason, number>>;
  /** The first few skipped keys, for the report. */
  skippedExamples: Array<{ key: string; reason: SkipReason }>;
  bytesListed: number;
  /** Bytes of the objects this import (re)wrote entries for: referenced in place, never copied. */
  bytesReferenced: number;
  /** Change records written. */
  commits: number;
}

export function emptyCounts(): ImportCounts {
  return {
    listed: 0,
    new: 0,
    changed: 0,
    unchanged: 0,
    deleted: 0,
    skipped: 0,
    skippedBy: {},
    skippedExamples: [],
    bytesListed: 0,
    bytesReferenced: 0,
    commits: 0,
  };
}

export interface CheckpointState {
  /** Id of the import run; a resumed run keeps it (it names the run's set of seen paths). */
  run: string;
  /** `delete`: the listing is complete and only the removal of vanished objects is left. */
  phase: 'list' | 'delete';
  /** Listing cursor after which nothing has been handled yet; absent at the start. */
  cursor?: string;
  /** Last change-log id when the run started: entries written after it are never deleted by it. */
  since: string;
  /** The run records every path it lists (needed for --delete). */
  trackSeen: boolean;
  counts: ImportCounts;
}

/** Checkpoints live this long after their last update: a resumable import is a recent one. */
const TTL_SECONDS = 7 * 24 * 3600;

/**
 * The checkpoint of one import (origin + target) and the set of paths a run has listed, kept in
 * the source Redis by meta's ImportCheckpointStore; this side knows what the fields mean.
 */
export class Checkpoint {
  readonly #store: ImportCheckpointStore;

  constructor(options: { meta: Meta; id: string }) {
    this.#store = options.meta.importCheckpoint(options.id);
  }

  get key(): string {
    return this.#store.key;
  }

  async load(): Promise<CheckpointState | undefined> {
    const h = await this.#store.load();
    if (!h.run || !h.since || (h.phase !== 'list' && h.phase !== 'delete')) return undefined;
    let counts: ImportCounts;
    try {
      counts = { ...emptyCounts(), ...(JSON.parse(h.counts ?? '{}') as Partial<ImportCounts>) };
    } catch {
      return undefined; // unreadable: start over, which is always correct
    }
    return { run: h.run, phase: h.phase, since: h.since, trackSeen: h.seen === '1', counts, ...(h.cursor ? { cursor: h.cursor } : {}) };
  }

  /** One HSET, so cursor and counts always agree. */
  async save(state: CheckpointState, about: { origin: string; target: string }): Promise<void> {
    const fields = {
      run: state.run,
      phase: state.phase,
      cursor: state.cursor ?? '',
      since: state.since,
      seen: state.trackSeen ? '1' : '0',
      counts: JSON.stringify(state.counts),
      origin: about.origin,
      target: about.target,
      updated: String(Date.now()),
    };
    await this.#store.save(fields, TTL_SECONDS);
  }

  addSeen(run: string, paths: string[], ttlSeconds = TTL_SECONDS): Promise<void> {
    return this.#store.addSeen(run, paths, ttlSeconds);
  }

  /** The paths of `paths` the run has not listed. */
  unseen(run: string, paths: string[]): Promise<string[]> {
    return this.#store.unseen(run, paths);
  }

  seenCount(run: string): Promise<number> {
    return this.#store.seenCount(run);
  }

  clearSeen(run: string): Promise<void> {
    return this.#store.clearSeen(run);
  }

  clear(run: string): Promise<void> {
    return this.#store.clear(run);
  }
}
