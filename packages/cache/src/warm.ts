import { type ChunkId, forEachLimit, isFerryError, type Logger, messageOf, parseChunkId, silentLogger } from '@ferry/core';
import type { CacheMember } from '@ferry/meta';
import type { CacheNodeClient } from './client.js';
import { type PlacementFn, rendezvousOwners } from './placement.js';

export interface WarmChunk {
  id: ChunkId;
  size: number;
}

export interface WarmProgress {
  chunks: number;
  done: number;
  bytes: number;
  doneBytes: number;
  failed: number;
}

export interface WarmOptions {
  /** In the order they should arrive (put each file's first chunk first). Duplicates are warmed once. */
  chunks: readonly WarmChunk[];
  members: readonly CacheMember[];
  replicas: number;
  client: CacheNodeClient;
  /** Chunks in flight at once (each to all its owners in parallel). Default 8. */
  concurrency?: number;
  placement?: PlacementFn;
  /**
   * Where the bytes come from when the caller already has them (a warm worker right after a copy):
   * owners that lack the chunk get a PUT of these bytes. Without it each owner fills itself from the
   * region's stores (read-through), and no chunk bytes pass through the caller.
   */
  read?: (chunk: WarmChunk) => Promise<Buffer>;
  onProgress?: (progress: WarmProgress) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface WarmResult {
  chunks: number;
  bytes: number;
  /** Chunk × owner pairs. */
  placements: number;
  /** Placements the owner had to fetch (or was sent). */
  fetched: number;
  /** Placements the owner already held. */
  held: number;
  /** Placements whose chunk the region's stores do not have (yet). */
  missing: number;
  /** Placements that failed: owner unreachable, corrupt upstream, full disk… */
  failed: number;
  /** The first few failures, for the report. */
  errors: Array<{ chunk: ChunkId; node: string; error: string; code?: string }>;
}

/** The chunks once each, in the order given, with validated ids. */
export function uniqueChunks(chunks: readonly WarmChunk[]): WarmChunk[] {
  const seen = new Set<string>();
  const out: WarmChunk[] = [];
  for (const c of chunks) {
    const id = parseChunkId(c.id);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ id, size: c.size });
  }
  return out;
}

/**
 * Put chunks on their owners now, `concurrency` chunks at a time; memory stays bounded by
 * concurrency × chunk size (and by nothing when nodes fill themselves). The caller's job queue (the
 * replicator's warm workers) or `ferry warmup` decides what to warm; this only does it. Reports
 * what happened per placement; `residency` is the check that the result is really there.
 */
export async function warmChunks(options: WarmOptions): Promise<WarmResult> {
  const chunks = uniqueChunks(options.chunks);
  const placement = options.placement ?? rendezvousOwners;
  const log = options.logger ?? silentLogger;
  const { client } = options;
  const result: WarmResult = { chunks: chunks.length, bytes: 0, placements: 0, fetched: 0, held: 0, missing: 0, failed: 0, errors: [] };
  const progress: WarmProgress = { chunks: chunks.length, done: 0, bytes: 0, doneBytes: 0, failed: 0 };
  for (const c of chunks) progress.bytes += c.size;
  result.bytes = progress.bytes;

  const fail = (chunk: ChunkId, node: string, err: unknown) => {
    result.failed += 1;
    if (result.errors.length < 20)
      result.errors.push({ chunk, node, error: messageOf(err), ...(isFerryError(err) ? { code: err.code } : {}) });
    log.warn({ chunk, node, reason: messageOf(err) }, 'warming a chunk on a cache node failed');
  };

  const warmOne = async (chunk: WarmChunk): Promise<void> => {
    const owners = placement(options.members, chunk.id, options.replicas);
    result.placements += owners.length;
    let failures = 0;
    const failHere = (node: string, err: unknown) => {
      failures += 1;
      fail(chunk.id, node, err);
    };
    const live = owners.filter((o) => {
      if (!client.isDown(o)) return true;
      failHere(o.id, new Error('node unreachable (recently failed)'));
      return false;
    });
    if (options.read) {
      const lacking: CacheMember[] = [];
      await Promise.all(
        live.map(async (o) => {
          try {
            if ((await client.head(o, chunk.id)) === undefined) lacking.push(o);
            else result.held += 1;
          } catch (err) {
            failHere(o.id, err);
          }
        }),
      );
      if (lacking.length > 0) {
        let bytes: Buffer | undefined;
        try {
          bytes = await options.read(chunk);
        } catch (err) {
          for (const o of lacking) failHere(o.id, err);
        }
        await Promise.all(
          lacking.map(async (o) => {
            if (!bytes) return;
            try {
              await client.put(o, chunk.id, bytes);
              result.fetched += 1;
            } catch (err) {
              failHere(o.id, err);
            }
          }),
        );
      }
    } else {
      await Promise.all(
        live.map(async (o) => {
          try {
            const state = await client.fill(o, chunk, options.signal);
            if (state === 'held') result.held += 1;
            else if (state === 'fetched') result.fetched += 1;
            else result.missing += 1;
          } catch (err) {
            failHere(o.id, err);
          }
        }),
      );
    }
    if (failures > 0) progress.failed += 1;
    progress.done += 1;
    progress.doneBytes += chunk.size;
    options.onProgress?.({ ...progress });
  };

  await forEachLimit(chunks, options.concurrency ?? 8, async (chunk) => {
    if (!options.signal?.aborted) await warmOne(chunk);
  });
  options.signal?.throwIfAborted();
  return result;
}

export interface ResidencyOptions {
  members: readonly CacheMember[];
  replicas: number;
  chunkIds: readonly ChunkId[];
  client: CacheNodeClient;
  placement?: PlacementFn;
  /** Also return the ids not held by all their owners (to warm them again). */
  listIncomplete?: boolean;
}

export interface NodeResidency {
  id: string;
  /** Chunks placement gives this node. */
  expected: number;
  /** Of those, what the node says it holds. */
  held: number;
  reachable: boolean;
}

export interface Residency {
  /** Distinct chunks asked about. */
  chunks: number;
  /** Chunks held by every one of their owners. */
  held: number;
  /** held / chunks, rounded down to 0.01, so 100 means every chunk on every owner. */
  percent: number;
  placements: number;
  placementsHeld: number;
  nodes: NodeResidency[];
  /** With `listIncomplete`: the chunks some owner lacks. */
  incomplete?: ChunkId[];
}

/**
 * Verified residency: asks the nodes themselves (POST /chunks/has, batched) which of its chunks
 * each owner holds, rather than trusting that a warm job once succeeded — evictions, restarts,
 * wiped disks and corrupt copies all show here. An unreachable owner holds nothing.
 */
export async function residency(options: ResidencyOptions): Promise<Residency> {
  const placement = options.placement ?? rendezvousOwners;
  const ids = [...new Set(options.chunkIds.map((id) => parseChunkId(id)))];
  const byNode = new Map<string, { member: CacheMember; ids: ChunkId[] }>();
  const owners = new Map<ChunkId, string[]>();
  for (const id of ids) {
    const mine = placement(options.members, id, options.replicas);
    owners.set(
      id,
      mine.map((m) => m.id),
    );
    for (const m of mine) {
      const slot = byNode.get(m.id) ?? { member: m, ids: [] };
      byNode.set(m.id, slot);
      slot.ids.push(id);
    }
  }
  const heldBy = new Map<string, Set<ChunkId>>();
  const nodes = await Promise.all(
    [...byNode.values()].map(async ({ member, ids: expected }): Promise<NodeResidency> => {
      try {
        const held = await options.client.has(member, expected);
        heldBy.set(member.id, held);
        return { id: member.id, expected: expected.length, held: held.size, reachable: true };
      } catch {
        return { id: member.id, expected: expected.length, held: 0, reachable: false };
      }
    }),
  );
  let held = 0;
  let placements = 0;
  let placementsHeld = 0;
  const incomplete: ChunkId[] = [];
  for (const [id, nodeIds] of owners) {
    placements += nodeIds.length;
    const on = nodeIds.filter((n) => heldBy.get(n)?.has(id)).length;
    placementsHeld += on;
    if (nodeIds.length > 0 && on === nodeIds.length) held += 1;
    else if (options.listIncomplete) incomplete.push(id);
  }
  const percent = ids.length === 0 ? 100 : Math.floor((held / ids.length) * 10_000) / 100;
  nodes.sort((a, b) => (a.id < b.id ? -1 : 1));
  return { chunks: ids.length, held, percent, placements, placementsHeld, nodes, ...(options.listIncomplete ? { incomplete } : {}) };
}
