import { InvalidArgumentError } from '@ferry/core';

/** Same rule as `volume` in the config schema: it ends up in every Redis key and queue name. */
export const VOLUME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Same rule as region names in the config schema. */
export const REGION_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export function parseVolume(volume: unknown): string {
  if (typeof volume === 'string' && VOLUME_PATTERN.test(volume)) return volume;
  const shown = typeof volume === 'string' ? JSON.stringify(volume.slice(0, 80)) : typeof volume;
  throw new InvalidArgumentError(
    `invalid volume ${shown}: expected 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`,
  );
}

export function parseRegion(region: unknown): string {
  if (typeof region === 'string' && REGION_PATTERN.test(region)) return region;
  const shown = typeof region === 'string' ? JSON.stringify(region.slice(0, 40)) : typeof region;
  throw new InvalidArgumentError(`invalid region ${shown}: expected 1-32 lowercase letters, digits, "_" or "-"`);
}

/**
 * Every Redis key of one volume. The `{volume}` hash tag puts them all in one Redis Cluster slot,
 * which the multi-key Lua scripts need.
 */
export interface VolumeKeys {
  /** Hash: path → entry JSON (source and mirror). */
  readonly entries: string;
  /** Sorted set, all scores 0: paths, for lexicographic prefix listing. */
  readonly paths: string;
  /** Stream: the change log (source side). */
  readonly log: string;
  /** Hash: chunk id → number of chunk occurrences across all entries. */
  readonly refs: string;
  /** Sorted set: chunk id → ms when its reference count reached 0 (garbage-collection candidates). */
  readonly unreferenced: string;
  /** Hash: region → last change-log id that region has applied (source side). */
  readonly acks: string;
  /** String: last change-log id applied here (mirror side). */
  readonly cursor: string;
  /** Set: chunk ids present in this region's store (mirror side). */
  readonly present: string;
  /** Hash: cache node id → node JSON. */
  readonly nodes: string;
  /** Sorted set: cache node id → last heartbeat ms. */
  readonly seen: string;
  /** String: a random id of this volume's history, made with the volume and anew when its Redis comes back empty (source side). */
  readonly epoch: string;
  /** Hash: folder → target of a batched rename still under way (source side). */
  readonly moves: string;
  /** String: `<owner> <token>` of the replica whose watcher leads in this region (mirror side). */
  readonly watcherLease: string;
  /** String: the fencing token of the current lease; it only grows, and never expires (mirror side). */
  readonly fence: string;
  /** Prefix of the set of paths seen by the full resync in progress, `<prefix>:<resync id>` (mirror side). */
  readonly resyncSeen: string;
  /** Hash: the resync in progress or the last one (id, snapshot id, epoch, pages applied, state, counts); no TTL. */
  readonly resyncInfo: string;
  /** Hash: what the mirror knows of the source's history at its cursor: `epoch`, `added` (records ever added up to the cursor). */
  readonly tracking: string;
  /** Set: chunks referenced here and not in this region's store (mirror side), kept by the scripts. */
  readonly missing: string;
  /** Hash: chunk id → JSON of its last failed copy (error, code, attempts, at, the copy request). */
  readonly copyFailures: string;
  /** Hash: facts about the reconciler's passes (when, how many chunks missing, queued) for status. */
  readonly reconcile: string;
  /** Hash: unreferenced chunk id → id of the change record that dropped its last reference (source side). */
  readonly unreferencedBy: string;
  /** Hash: chunk id → `<ms> <owner>` of the garbage collection that claimed it to delete its object. */
  readonly gcClaims: string;
  /** Sorted set: chunk id → ms when GC finished deleting its object (kept for a day; see lua/gc-claim.lua). */
  readonly gcDeleted: string;
  /** Hash: ext- chunk id → sha256 hex of its bytes, when known (verify checks copies against it). */
  readonly exthash: string;
  /** Hash: garbage-collection and verify counters and the last pass's figures, for status. */
  readonly gcInfo: string;
  /** String: owner of the garbage-collection pass running in this region (PX: the pass renews it). */
  readonly gcLock: string;
}

export function volumeKeys(volume: string): VolumeKeys {
  const base = `ferry:{${parseVolume(volume)}}`;
  return Object.freeze({
    entries: `${base}:entries`,
    paths: `${base}:paths`,
    log: `${base}:log`,
    refs: `${base}:refs`,
    unreferenced: `${base}:unreferenced`,
    acks: `${base}:acks`,
    cursor: `${base}:cursor`,
    present: `${base}:present`,
    nodes: `${base}:nodes`,
    seen: `${base}:seen`,
    epoch: `${base}:epoch`,
    moves: `${base}:moves`,
    watcherLease: `${base}:watcher-lease`,
    fence: `${base}:watcher-fence`,
    resyncSeen: `${base}:resync-seen`,
    resyncInfo: `${base}:resync`,
    tracking: `${base}:tracking`,
    missing: `${base}:missing`,
    copyFailures: `${base}:copy-failures`,
    reconcile: `${base}:reconcile`,
    unreferencedBy: `${base}:unreferenced-by`,
    gcClaims: `${base}:gc-claims`,
    gcDeleted: `${base}:gc-deleted`,
    exthash: `${base}:exthash`,
    gcInfo: `${base}:gc`,
    gcLock: `${base}:gc-lock`,
  });
}
