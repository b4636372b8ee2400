import type { ChunkId } from '@ferry/core';
import { type CopyFailure, GcMeta, idTime, type Meta, type MirrorMeta } from '@ferry/meta';
import type { Region } from '@ferry/region';
import { heldBackOf } from './metrics.js';

/** Garbage collection and scrub figures of a region, from its gc hash. */
export interface GcStatus {
  /** When the last pass started (ms), if one ran. */
  lastPassAt?: number;
  /** Found by the last pass: unreferenced chunks past grace it could delete. */
  reclaimable: { chunks: number; bytes: number };
  /** Deleted by every pass so far. */
  reclaimed: { chunks: number; bytes: number };
  /** Source only, last pass: what each mirror's missing acknowledgement keeps. */
  heldBack: Record<string, { chunks: number; bytes: number }>;
  /** Scrub and verify, ever: chunks read back whole, found bad or missing, copied again. */
  verified: number;
  bad: number;
  repaired: number;
}

export async function gcStatus(region: Region): Promise<GcStatus> {
  const info = await new GcMeta({ redis: region.redis, keys: region.meta.keys, mirror: !region.isSource }).info();
  const n = (field: string) => Number(info[field] ?? 0);
  return {
    ...(info['last-pass-at'] ? { lastPassAt: n('last-pass-at') } : {}),
    reclaimable: { chunks: n('reclaimable-chunks'), bytes: n('reclaimable-bytes') },
    reclaimed: { chunks: n('reclaimed-chunks'), bytes: n('reclaimed-bytes') },
    heldBack: heldBackOf(info),
    verified: n('verified-chunks'),
    bad: n('bad-chunks'),
    repaired: n('repaired-chunks'),
  };
}

export interface RegionStatus {
  region: string;
  role: 'source' | 'mirror';
  cursor?: string;
  /** Records not applied yet (null until the watcher has learnt the source's count at its cursor) and the age of the oldest. */
  lag?: { records: number | null; seconds: number };
  chunks?: { referenced: number; present: number; missing: number; failing: number };
  queue?: Record<string, number>;
  /** Chunks whose last copy failed (up to 20), with the error; each is tried again on every reconcile pass. */
  failures?: Array<{ chunk: string; error: string; code: string; attempts: number; at: number }>;
  resync?: Record<string, string>;
  reconcile?: Record<string, string>;
  gc?: GcStatus;
}

/**
 * How far behind a mirror's cursor is, from counters: the source's count of records ever added
 * (one atomic script) minus the count at the mirror's cursor, and the age of the first record
 * after the cursor (one record read).
 */
export async function lagOf(source: Meta, mirror: MirrorMeta, cursor: string | undefined) {
  const [history, tracking] = await Promise.all([source.history(cursor, { create: false }), mirror.tracking()]);
  const records = cursor === undefined ? history.length : tracking.added === undefined ? null : Math.max(0, history.added - tracking.added);
  if (records === 0 || (cursor !== undefined && cursor === history.last)) return { records: records ?? 0, seconds: 0 };
  const next = await source.firstAfter(cursor);
  return { records, seconds: next ? Math.max(0, (Date.now() - idTime(next)) / 1000) : 0 };
}

/** A region's replication state, read from Redis counters (no daemon needed, no scan). */
export async function regionStatus(region: Region): Promise<RegionStatus> {
  const { mirror } = region;
  const copies = await region.copyQueue();
  if (!mirror) return { region: region.name, role: 'source', gc: await gcStatus(region) };
  const cursor = await mirror.cursor();
  const [lag, counts, failures, resync, reconcile] = await Promise.all([
    lagOf(region.sourceMeta, mirror, cursor),
    mirror.counts(),
    mirror.chunks.failures(20),
    region.redis.hgetall(mirror.keys.resyncInfo),
    mirror.chunks.reconcileInfo(),
  ]);
  const status: RegionStatus = {
    region: region.name,
    role: 'mirror',
    lag,
    chunks: {
      referenced: counts.referenced,
      present: counts.referenced - counts.missing,
      missing: counts.missing,
      failing: counts.failing,
    },
    failures: failures.failures.map(shownFailure),
    resync,
    reconcile,
    gc: await gcStatus(region),
  };
  if (cursor) status.cursor = cursor;
  if (copies) status.queue = await copies.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
  return status;
}

function shownFailure(f: CopyFailure) {
  return { chunk: f.chunk, error: f.error, code: f.code, attempts: f.attempts, at: f.at };
}

/** Percent of a file's (or folder's) chunks this region's store holds. */
export async function presence(
  mirror: MirrorMeta | undefined,
  chunkIds: ChunkId[],
): Promise<{ chunks: number; present: number; percent: number }> {
  const unique = [...new Set(chunkIds)];
  if (!mirror || unique.length === 0) return { chunks: unique.length, present: unique.length, percent: 100 };
  const missing = (await mirror.missing(unique)).length;
  const present = unique.length - missing;
  return { chunks: unique.length, present, percent: Math.floor((present / unique.length) * 1000) / 10 };
}
