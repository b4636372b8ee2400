import { randomBytes } from 'node:crypto';
import { ConflictError, chunkKey, forEachLimit, GcRefusedError, isChunkId, type Logger, NotFoundError } from '@ferry/core';
import { type GcCaller, GcMeta, gcRefusalText } from '@ferry/meta';
import type { ObjectStore } from '@ferry/stores';
import type { Region } from './region.js';

/** Unreferenced-set members read per claim step: keeps each script far under 50 ms. */
const CLAIM_BATCH = 200;
/** Objects deleted at once. */
const DELETE_CONCURRENCY = 16;
/** The collection lock outlives a stalled pass by this much; a live pass renews it every step. */
const LOCK_TTL_MS = 60_000;

export interface GcOptions {
  /** Keep chunks unreferenced, and orphan objects, for less than this (ms). */
  graceMs: number;
  /** Report what a pass would delete; delete nothing. */
  dryRun?: boolean;
  /** Called before each step; throwing (e.g. a lost lease) stops the pass where it is. */
  check?: () => void;
  /**
   * The fencing token of the lease the pass runs under (the daemon's); each claim step checks it
   * against the token in Redis. Absent for a manual pass.
   */
  token?: string;
  logger?: Logger;
}

export interface HeldBack {
  chunks: number;
  bytes: number;
  /** The first few chunks held, to name them. */
  examples: string[];
}

export interface GcReport {
  region: string;
  dryRun: boolean;
  /** Unreferenced chunks past grace that a pass may delete (deleted unless dry). */
  reclaimable: { chunks: number; bytes: number };
  /** Deleted by this pass (unreferenced chunks and orphans). */
  reclaimed: { chunks: number; bytes: number };
  /** Source only: chunks past grace kept because a mirror has not acknowledged the record that dropped them. */
  heldBack: Record<string, HeldBack>;
  orphans: { objects: number; bytes: number };
  temp: { files: number; bytes: number };
  /** Unreferenced chunks past grace kept because a running put holds them. */
  heldByPuts: number;
}

/** Size of an object, or 0 when it is not there. */
async function sizeOf(store: ObjectStore, id: string): Promise<number> {
  try {
    return (await store.head(chunkKey(id as never))).size;
  } catch (err) {
    if (err instanceof NotFoundError) return 0;
    throw err;
  }
}

/** Delete claimed chunks' objects, then end their claims; returns the bytes freed. */
async function deleteClaimed(gc: GcMeta, store: ObjectStore, ids: readonly string[]): Promise<number> {
  let bytes = 0;
  await forEachLimit(ids, DELETE_CONCURRENCY, async (id) => {
    // Read the size first: `bytes += await …` would add to the total as it was before the await.
    const size = await sizeOf(store, id);
    bytes += size;
    await store.delete(chunkKey(id as never));
  });
  await gc.finish(ids, bytes);
  return bytes;
}

/**
 * One garbage-collection pass over a region (protocol: @ferry/meta lua/gc-claim.lua): claims left
 * by an interrupted pass are finished, unreferenced chunks past grace are claimed in short steps
 * (in the source only those every mirror has acknowledged the dropping record of), deleted and
 * their claims ended; then the store's chunk prefix is listed page by page and objects older than
 * grace that no record knows are claimed and deleted the same way, and the store's temp files
 * older than grace go. One pass at a time per region (a lock in Redis).
 */
export async function collectGarbage(region: Region, options: GcOptions): Promise<GcReport> {
  const gc = new GcMeta({ redis: region.redis, keys: region.meta.keys, mirror: !region.isSource });
  const dryRun = options.dryRun ?? false;
  const caller: GcCaller = { token: options.token ?? '' };
  const refusal = await gc.refusal(caller);
  if (refusal !== undefined) {
    await gc.recordRefusal(refusal, await gc.serverTime());
    throw refusedError(region.name, refusal);
  }
  const owner = `${region.name}-${randomBytes(6).toString('hex')}`;
  const check = async () => {
    options.check?.();
    if (!dryRun) await gc.renewLock(LOCK_TTL_MS);
  };
  if (!dryRun && !(await gc.lock(owner, LOCK_TTL_MS))) {
    throw new ConflictError(`gc ${region.name}: another collection is running in this region`);
  }
  const report: GcReport = {
    region: region.name,
    dryRun,
    reclaimable: { chunks: 0, bytes: 0 },
    reclaimed: { chunks: 0, bytes: 0 },
    heldBack: {},
    orphans: { objects: 0, bytes: 0 },
    temp: { files: 0, bytes: 0 },
    heldByPuts: 0,
  };
  try {
    const now = await gc.serverTime();
    const cutoff = now - options.graceMs;
    if (!dryRun) {
      for await (const ids of gc.scanClaims()) {
        await check();
        const bytes = await deleteClaimed(gc, region.store, ids);
        report.reclaimed.chunks += ids.length;
        report.reclaimed.bytes += bytes;
      }
    }
    await collectUnreferenced(region, gc, report, { cutoff, dryRun, check, caller });
    await sweepOrphans(region, gc, report, { before: cutoff, dryRun, check, caller });
    if (!dryRun && region.store.sweepTemp) report.temp = await region.store.sweepTemp(cutoff);
    await gc.record(
      { 'orphans-chunks': dryRun ? 0 : report.orphans.objects, 'temp-files': report.temp.files },
      {
        'last-pass-at': now,
        'last-pass-dry': dryRun ? 1 : 0,
        // What is reclaimable now: a dry run's finding; a real pass deleted what it found.
        'reclaimable-chunks': dryRun ? report.reclaimable.chunks : 0,
        'reclaimable-bytes': dryRun ? report.reclaimable.bytes : 0,
        'held-back': JSON.stringify(
          Object.fromEntries(Object.entries(report.heldBack).map(([m, h]) => [m, { chunks: h.chunks, bytes: h.bytes }])),
        ),
      },
    );
    await gc.recordRefusal(undefined, now);
    options.logger?.info({ ...report }, dryRun ? 'garbage collection (dry run)' : 'garbage collection');
    return report;
  } catch (err) {
    // Refused by a step: the Redis changed under the pass (flushed, resync, lease taken).
    if (err instanceof GcRefusedError) {
      await gc.recordRefusal(err.reason, await gc.serverTime()).catch(() => undefined);
      throw refusedError(region.name, err.reason, err);
    }
    throw err;
  } finally {
    if (!dryRun) await gc.unlock(owner);
  }
}

function refusedError(region: string, reason: string, cause?: unknown): GcRefusedError {
  return new GcRefusedError(`gc ${region}: refused: ${gcRefusalText(reason)}; nothing was deleted`, { reason, cause });
}

async function collectUnreferenced(
  region: Region,
  gc: GcMeta,
  report: GcReport,
  o: { cutoff: number; dryRun: boolean; check: () => Promise<void>; caller: GcCaller },
): Promise<void> {
  const mirrors = region.isSource ? Object.keys(region.ferry.regions).filter((r) => r !== region.name) : [];
  let offset = 0;
  for (;;) {
    await o.check();
    const batch = await gc.claim({ cutoff: o.cutoff, offset, limit: CLAIM_BATCH, dryRun: o.dryRun, mirrors, ...o.caller });
    offset += o.dryRun ? batch.read : batch.held.length + batch.kept;
    report.heldByPuts += batch.kept;
    await forEachLimit(batch.held, DELETE_CONCURRENCY, async ({ chunk, mirrors: behind }) => {
      const size = await sizeOf(region.store, chunk);
      for (const m of behind) {
        report.heldBack[m] ??= { chunks: 0, bytes: 0, examples: [] };
        const held = report.heldBack[m];
        held.chunks += 1;
        held.bytes += size;
        if (held.examples.length < 5) held.examples.push(chunk);
      }
    });
    let bytes = 0;
    if (o.dryRun) {
      await forEachLimit(batch.claimable, DELETE_CONCURRENCY, async (id) => {
        const size = await sizeOf(region.store, id);
        bytes += size;
      });
    } else {
      bytes = await deleteClaimed(gc, region.store, batch.claimable);
      report.reclaimed.chunks += batch.claimable.length;
      report.reclaimed.bytes += bytes;
    }
    report.reclaimable.chunks += batch.claimable.length;
    report.reclaimable.bytes += bytes;
    if (batch.read < CLAIM_BATCH) return;
  }
}

/** The chunk id an object key under `chunks/` names, if it names one. */
function chunkOfKey(key: string): string | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return isChunkId(name) && chunkKey(name) === key ? name : undefined;
}

async function sweepOrphans(
  region: Region,
  gc: GcMeta,
  report: GcReport,
  o: { before: number; dryRun: boolean; check: () => Promise<void>; caller: GcCaller },
): Promise<void> {
  if (!region.isSource) {
    // A resync rebuilt this mirror's records: what it does not know now may have been known (and
    // read) until the Redis lost it, so nothing is an orphan for longer than since the resync.
    const resynced = await gc.lastResyncAt();
    if (resynced !== undefined && resynced >= o.before) return;
  }
  for await (const page of region.store.list('chunks/', { pageSize: 1000 })) {
    await o.check();
    const old = page.items.filter((item) => item.lastModified < o.before);
    let ids = old.map((item) => chunkOfKey(item.key)).filter((id): id is string => id !== undefined);
    if (!region.isSource && ids.length > 0) {
      // A mirror keeps whatever the source still references, whatever its own Redis says: an
      // object it does not know yet (a copy not recorded, a record not applied) is one it needs.
      const counts = await region.sourceMeta.refs.refCounts(ids);
      ids = ids.filter((_, i) => (counts[i] ?? 0) === 0);
    }
    const sizes = new Map(old.map((item) => [item.key, item.size]));
    let orphans: string[];
    if (o.dryRun) {
      const known = await gc.known(ids);
      orphans = ids.filter((_, i) => !known[i]);
    } else {
      orphans = await gc.claimOrphans(ids, o.caller);
      const bytes = orphans.reduce((sum, id) => sum + (sizes.get(chunkKey(id as never)) ?? 0), 0);
      await forEachLimit(orphans, DELETE_CONCURRENCY, (id) => region.store.delete(chunkKey(id as never)));
      await gc.finish(orphans, bytes);
      report.reclaimed.chunks += orphans.length;
      report.reclaimed.bytes += bytes;
    }
    report.orphans.objects += orphans.length;
    report.orphans.bytes += orphans.reduce((sum, id) => sum + (sizes.get(chunkKey(id as never)) ?? 0), 0);
  }
}
