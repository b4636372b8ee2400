import { InvalidArgumentError } from '@ferry/core';
import { assertOneSlot } from './slots.js';

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
  /**
   * Hash: region → last change-log id that region has applied (source side), as written before
   * each mirror had a key of its own (`ackKey`); read only as a fallback.
   */
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
  /** String: ms when the watcher lease ends (or ended) if nobody renews it: set by every take, renewal and release; no TTL. */
  readonly watcherLeaseEnd: string;
  /** Prefix of the set of paths seen by the full resync in progress, `<prefix>:<resync id>` (mirror side). */
  readonly resyncSeen: string;
  /** Hash: the resync in progress or the last one (id, snapshot id, epoch, pages applied, state, counts); no TTL. */
  readonly resyncInfo: string;
  /** String: last change-log id the warm rules have looked at (this region's side). */
  readonly warmCursor: string;
  /** String: owner token of the replica that follows the log for the warm rules. */
  readonly warmLease: string;
  /** String: fencing token counter of the warm-rules lease (only grows). */
  readonly warmFence: string;
  /** String: ms when the warm-rules lease ends (or ended) if nobody renews it; no TTL. */
  readonly warmLeaseEnd: string;
  /** Hash: `bytes`, `chunks` copied into this region's store by its copy workers, ever (mirror side; rates are read from it). */
  readonly copied: string;
  /** Hash: external chunk id → sha256 of its first verified copy in this region (never changed once set). */
  readonly extHashes: string;
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
  /** Hash: garbage-collection and verify counters and the last pass's figures, for status. */
  readonly gcInfo: string;
  /** String: owner of the garbage-collection pass running in this region (PX: the pass renews it). */
  readonly gcLock: string;
  /** Sorted set: chunk id → ms until which a running put holds it (GC claims no held chunk; see lua/hold.lua). */
  readonly gcHolds: string;
  /**
   * List: copy requests (JSON) of chunks readers had to fetch from outside the region (mirror
   * side), capped; the replicator checks and queues them. The one key a reader may write.
   */
  readonly backfill: string;
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
    watcherLeaseEnd: `${base}:watcher-lease-end`,
    resyncSeen: `${base}:resync-seen`,
    resyncInfo: `${base}:resync`,
    warmCursor: `${base}:warm-cursor`,
    warmLease: `${base}:warm-lease`,
    warmFence: `${base}:warm-fence`,
    warmLeaseEnd: `${base}:warm-lease-end`,
    copied: `${base}:copied`,
    extHashes: `${base}:exthash`,
    tracking: `${base}:tracking`,
    missing: `${base}:missing`,
    copyFailures: `${base}:copy-failures`,
    reconcile: `${base}:reconcile`,
    unreferencedBy: `${base}:unreferenced-by`,
    gcClaims: `${base}:gc-claims`,
    gcDeleted: `${base}:gc-deleted`,
    gcInfo: `${base}:gc`,
    gcLock: `${base}:gc-lock`,
    gcHolds: `${base}:gc-holds`,
    backfill: `${base}:backfill`,
  });
}

/**
 * String: the last change-log id mirror `region` has applied (source side). One key per mirror,
 * so a mirror's Redis user may write its own ack and nothing else of the source.
 */
export function ackKey(volume: string, region: string): string {
  return mirrorAckKey(volumeKeys(volume), region);
}

/** `ackKey` from a volume's keys. */
export function mirrorAckKey(keys: VolumeKeys, region: string): string {
  return `${keys.acks.slice(0, -'acks'.length)}ack:${parseRegion(region)}`;
}

/** Set: chunk ids one `ferry verify` run has already met (its memory stays in Redis, not the process); dropped at its end. */
export function verifySeenKey(volume: string, run: string): string {
  return `ferry:{${parseVolume(volume)}}:verify-seen:${run}`;
}

/** Hash: the checkpoint of import `id` (source side), next to the volume's keys; `:seen:<run>` sets hang off it. */
export function importCheckpointKey(volume: string, id: string): string {
  return `ferry:{${parseVolume(volume)}}:import:${id}`;
}

/**
 * BullMQ prefix for a volume: `{ferry:<volume>}`. BullMQ keys are `<prefix>:<queue>:…`, so the
 * braces put every key of every queue of the volume in one cluster slot, as BullMQ's scripts need.
 */
export function queuePrefix(volume: string): string {
  return `{ferry:${parseVolume(volume)}}`;
}

/**
 * Hash beside a volume's queues: small chunk id → the id of the copy batch job that holds it, so
 * a producer that looks for a chunk's job finds one it shares with other chunks. Not under
 * `<prefix>:copy:`, where BullMQ keeps its jobs by id.
 */
export function copyBatchesKey(volume: string): string {
  return `${queuePrefix(volume)}:ferry-copy-batches`;
}

/**
 * Checked when a region opens: the keys each multi-key script and transaction touches share one
 * Redis Cluster slot (the volume's keys; each queue's keys). A key layout that broke this would
 * work on one server and fail with CROSSSLOT on a Cluster.
 */
export function checkKeySlots(volume: string): void {
  const keys = volumeKeys(volume);
  assertOneSlot(`the keys of volume ${volume}`, [
    ...Object.values(keys),
    importCheckpointKey(volume, 'x'),
    `${keys.resyncSeen}:x`,
    ackKey(volume, 'x'),
  ]);
  const prefix = queuePrefix(volume);
  assertOneSlot(`the queues of volume ${volume}`, [`${prefix}:copy:wait`, `${prefix}:copy:x`, `${prefix}:warm:wait`, `${prefix}:warm:x`]);
}
