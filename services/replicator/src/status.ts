import type { ChunkId } from '@ferry/core';
import { type CopyFailure, GcMeta, idTime, Lease, type Meta, type MirrorMeta } from '@ferry/meta';
import type { Region } from '@ferry/region';
import { heldBackOf } from './metrics.js';
import type { CopyRates, Throughput } from './rates.js';

/**
 * Garbage collection and scrub figures of a region, from its gc hash: what holds now first
 * (as of the last pass or check), then the totals since the region began, labelled as such.
 */
export interface GcStatus {
  /** The last pass: when it started (ms) and whether it was a dry run; absent before the first. */
  lastPass?: { at: number; dryRun: boolean };
  /** Now: unreferenced chunks past grace a pass could delete (found by a dry last pass; 0 after a real one, which deleted them). */
  reclaimable: { chunks: number; bytes: number };
  /** Now (last pass), source only: what each mirror's missing acknowledgement keeps. */
  heldBack: Record<string, { chunks: number; bytes: number }>;
  /** Why the last pass collected nothing (one word: no-cursor, resync, fenced), and when; absent when it ran. */
  refused?: { reason: string; at: number };
  /** The last verify or scrub check: chunks it read, bad ones it left (not repaired), repaired ones. */
  lastCheck?: { at: number; path: string; chunks: number; bad: number; repaired: number };
  /** Ever: objects deleted by every pass; chunks read back whole, found bad or missing, copied again by every check. */
  totals: { reclaimed: { chunks: number; bytes: number }; verified: number; bad: number; repaired: number };
}

export async function gcStatus(region: Region): Promise<GcStatus> {
  const info = await new GcMeta({ redis: region.redis, keys: region.meta.keys, mirror: !region.isSource }).info();
  const n = (field: string) => Number(info[field] ?? 0);
  return {
    ...(info['last-pass-at'] ? { lastPass: { at: n('last-pass-at'), dryRun: info['last-pass-dry'] === '1' } } : {}),
    reclaimable: { chunks: n('reclaimable-chunks'), bytes: n('reclaimable-bytes') },
    heldBack: heldBackOf(info),
    ...(info.refused ? { refused: { reason: info.refused, at: n('refused-at') } } : {}),
    ...(info['last-verify-at']
      ? {
          lastCheck: {
            at: n('last-verify-at'),
            path: info['last-verify-path'] ?? '/',
            chunks: n('last-verify-chunks'),
            bad: n('last-verify-bad'),
            repaired: n('last-verify-repaired'),
          },
        }
      : {}),
    totals: {
      reclaimed: { chunks: n('reclaimed-chunks'), bytes: n('reclaimed-bytes') },
      verified: n('verified-chunks'),
      bad: n('bad-chunks'),
      repaired: n('repaired-chunks'),
    },
  };
}

/**
 * Who leads the region's daemons: whether a replicator holds the lease, and when it ends (held,
 * unless renewed) or ended (nobody holds it since then). No `endsAt`: never held since it was
 * recorded.
 */
export interface LeaseStatus {
  held: boolean;
  endsAt?: number;
}

export interface RegionStatus {
  region: string;
  role: 'source' | 'mirror';
  /** The region could not be read (its Redis unreachable): the reason, and nothing else is known. */
  error?: string;
  /** The lease of the region's leading replicator (the watcher's in a mirror; gc and scrub in the source, when configured). */
  lease?: LeaseStatus;
  cursor?: string;
  /** Records not applied yet (null until the watcher has learnt the source's count at its cursor) and the age of the oldest. */
  lag?: { records: number | null; seconds: number };
  chunks?: { referenced: number; present: number; missing: number; failing: number };
  queue?: Record<string, number>;
  /** Copy throughput over the last readings of the copied totals (absent until two readings). */
  throughput?: Throughput;
  /** Ever: chunks and bytes the copy workers wrote into the region's store. */
  copied?: { chunks: number; bytes: number };
  /** Chunks whose last copy failed (up to 20), with the error; each is tried again on every reconcile pass. */
  failures?: Array<{ chunk: string; error: string; code: string; attempts: number; at: number }>;
  /** The resync in progress or the last one: state, why (`reason`), snapshot id, counts. */
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
  const [history, tracking] = await Promise.all([source.log.history(cursor, { create: false }), mirror.tracking()]);
  const records = cursor === undefined ? history.length : tracking.added === undefined ? null : Math.max(0, history.added - tracking.added);
  if (records === 0 || (cursor !== undefined && cursor === history.last)) return { records: records ?? 0, seconds: 0 };
  const next = await source.log.firstAfter(cursor);
  return { records, seconds: next ? Math.max(0, (Date.now() - idTime(next)) / 1000) : 0 };
}

/** The state of the lease the region's leading replicator holds (read only: no owner, no token). */
export async function leaseStatus(region: Region): Promise<LeaseStatus> {
  const k = region.meta.keys;
  return new Lease({ redis: region.redis, key: k.watcherLease, fenceKey: k.fence, endKey: k.watcherLeaseEnd, ttlMs: 1 }).state();
}

export interface RegionStatusOptions {
  /** Where copy rates are computed from readings of the copied totals (kept across calls by the daemon). */
  rates?: CopyRates;
}

/** A region's replication state, read from Redis counters (no daemon needed, no scan). */
export async function regionStatus(region: Region, options: RegionStatusOptions = {}): Promise<RegionStatus> {
  const { mirror } = region;
  const leads = mirror !== undefined || region.config.gc !== undefined || region.config.scrub !== undefined;
  const lease = leads ? await leaseStatus(region) : undefined;
  if (!mirror) return { region: region.name, role: 'source', ...(lease ? { lease } : {}), gc: await gcStatus(region) };
  const copies = await region.copyQueue();
  const cursor = await mirror.cursor();
  const [lag, counts, failures, resync, reconcile, copied] = await Promise.all([
    lagOf(region.sourceMeta, mirror, cursor),
    mirror.counts(),
    mirror.chunks.failures(20),
    mirror.resyncInfo(),
    mirror.chunks.reconcileInfo(),
    mirror.chunks.copied(),
  ]);
  const throughput = options.rates?.observe(region.name, copied);
  const status: RegionStatus = {
    region: region.name,
    role: 'mirror',
    ...(lease ? { lease } : {}),
    lag,
    chunks: {
      referenced: counts.referenced,
      present: counts.referenced - counts.missing,
      missing: counts.missing,
      failing: counts.failing,
    },
    ...(throughput ? { throughput } : {}),
    copied,
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
