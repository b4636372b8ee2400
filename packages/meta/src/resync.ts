import { randomBytes } from 'node:crypto';
import { ConflictError, type Entry } from '@ferry/core';
import { chunkIdList, entryRest } from './entry.js';
import { parseStreamId } from './ids.js';
import type { VolumeKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { runScript } from './scripts.js';

/*
 * A full resync of a mirror: take the source's snapshot id (and epoch) first, apply every source
 * entry page by page (only newer versions win), then remove what the source no longer has and
 * set the cursor to the snapshot id in the same step as the last removal. Its state (id, snapshot,
 * pages applied, the seen set) lives in the mirror's Redis without a TTL, so an outage of any
 * length cannot make it forget what it saw; every page leaves a marker in the seen set, and the
 * prune refuses to delete anything unless all markers are there. A resync that cannot finish is
 * started over from a new snapshot, never half-applied.
 */

/** What a resync starts from: the source at one moment (Meta.history). */
export interface ResyncStart {
  /** The source log's last generated id when the snapshot was taken ('0-0' for an empty log). */
  snapshot: string;
  /** The source's epoch at that moment. */
  epoch: string;
  /** Records the source had ever added at that moment. */
  added: number;
  reason?: string;
}

/** A resync in progress, as its writer holds it. */
export interface Resync {
  id: string;
  snapshot: string;
  /** Key of this resync's seen set. */
  seen: string;
  /** Pages applied so far (each snapshot script call is one page). */
  pages: number;
}

/** The resync hash: the one in progress, or the last one. */
export interface ResyncState {
  id: string;
  snapshot: string;
  state: 'running' | 'incomplete' | 'done' | string;
  pages: number;
  count: number;
  reason?: string;
  problem?: string;
  started?: number;
  finished?: number;
  removed?: number;
}

/** A resync whose seen set does not account for every page it applied: nothing was removed; start it over. */
export class ResyncIncompleteError extends ConflictError {}

/** Bytes of entries one snapshot script call carries at most (a page is split below this). */
const PAGE_BYTES = 2 ** 20;

export async function readResyncState(redis: RedisClient, keys: VolumeKeys): Promise<ResyncState | undefined> {
  const h = await redis.hgetall(keys.resyncInfo);
  if (!h.state) return undefined;
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
  const state: ResyncState = {
    id: h.id ?? '',
    snapshot: h.snapshot ?? '',
    state: h.state,
    pages: Number(h.pages ?? 0),
    count: Number(h.count ?? 0),
  };
  for (const field of ['reason', 'problem'] as const) if (h[field]) state[field] = h[field];
  for (const field of ['started', 'finished', 'removed'] as const) {
    const n = num(h[field]);
    if (n !== undefined) state[field] = n;
  }
  return state;
}

export async function beginResync(redis: RedisClient, keys: VolumeKeys, start: ResyncStart, token: string): Promise<Resync> {
  const snapshot = parseStreamId(start.snapshot, 'snapshot id');
  const id = randomBytes(8).toString('hex');
  const args = [token, id, snapshot, start.epoch, start.added, start.reason ?? '', keys.resyncSeen];
  const seen = String(await runScript(redis, 'resync', [keys.resyncInfo, keys.fence], args));
  return { id, snapshot, seen, pages: 0 };
}

/** Split a page into script calls of at most PAGE_BYTES of entries (at least one entry each). */
function slices(page: Entry[]): Entry[][] {
  const out: Entry[][] = [];
  let current: Entry[] = [];
  let bytes = 0;
  for (const entry of page) {
    const size = entryRest(entry).length + entry.path.length;
    if (current.length > 0 && bytes + size > PAGE_BYTES) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export async function snapshotPage(redis: RedisClient, keys: VolumeKeys, resync: Resync, page: Entry[], token: string): Promise<number> {
  const k = keys;
  const scriptKeys = [k.entries, k.paths, k.refs, k.unreferenced, resync.seen, k.resyncInfo, k.fence, k.present, k.missing, k.copyFailures];
  let written = 0;
  for (const slice of slices(page)) {
    const args = [
      token,
      resync.id,
      resync.pages + 1,
      ...slice.flatMap((e) => [e.path, parseStreamId(e.version), entryRest(e), chunkIdList(e)]),
    ];
    const [status, detail] = (await runScript(redis, 'snapshot', scriptKeys, args)) as [string, string | number];
    if (status === 'stale') throw new ResyncIncompleteError(`resync ${resync.id} is no longer the one running (state ${detail})`);
    if (status === 'order') throw new ResyncIncompleteError(`resync ${resync.id}: page ${resync.pages + 1} after ${detail} pages`);
    resync.pages += 1;
    written += Number(detail);
  }
  return written;
}

export async function finishResync(redis: RedisClient, keys: VolumeKeys, resync: Resync, token: string, pageSize: number): Promise<number> {
  const k = keys;
  const scriptKeys = [
    k.entries,
    k.paths,
    k.refs,
    k.unreferenced,
    resync.seen,
    k.cursor,
    k.resyncInfo,
    k.fence,
    k.present,
    k.missing,
    k.tracking,
    k.copyFailures,
  ];
  let removed = 0;
  let from = '-';
  for (;;) {
    const page = await redis.zrangebylex(k.paths, from, '+', 'LIMIT', 0, pageSize);
    const last = page.length < pageSize;
    const reply = (await runScript(redis, 'prune', scriptKeys, [token, resync.id, last ? '1' : '0', ...page])) as [string, ...number[]];
    const [status, ...detail] = reply;
    if (status === 'incomplete') {
      throw new ResyncIncompleteError(
        `resync ${resync.id}: its seen set holds ${detail[1]} of ${detail[0]} page markers (lost or cut short); nothing was removed`,
      );
    }
    if (status === 'stale')
      throw new ResyncIncompleteError(`resync ${resync.id} is no longer the one running (state ${String(detail[0])})`);
    removed += Number(detail[0]);
    if (last) return removed;
    from = `(${page.at(-1)}`;
  }
}
