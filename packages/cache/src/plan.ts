import type { ChunkId, Entry } from '@ferry/core';
import type { CacheMember } from '@ferry/meta';
import { type PlacementFn, rendezvousOwners } from './placement.js';
import { uniqueChunks, type WarmChunk } from './warm.js';

/** Every file's first chunk (safetensors header) first, then the rest in file order; each chunk once. */
export function warmOrder(entries: Entry[]): WarmChunk[] {
  const firsts = entries.flatMap((e) => e.chunks.slice(0, 1));
  const rest = entries.flatMap((e) => e.chunks.slice(1));
  const seen = new Set<string>();
  return [...firsts, ...rest].filter((c) => !seen.has(c.id) && seen.add(c.id)).map((c) => ({ id: c.id, size: c.size }));
}

/** Bytes placement puts on each node for these chunks (to compare with the nodes' capacities). */
export function plannedBytes(
  members: readonly CacheMember[],
  replicas: number,
  chunks: readonly WarmChunk[],
  placement: PlacementFn = rendezvousOwners,
): Map<string, number> {
  const bytes = new Map<string, number>(members.map((m) => [m.id, 0]));
  for (const c of uniqueChunks(chunks))
    for (const m of placement(members, c.id, replicas)) bytes.set(m.id, (bytes.get(m.id) ?? 0) + c.size);
  return bytes;
}

/** One chunk on one owner. */
export interface WarmPlacement {
  chunk: ChunkId;
  size: number;
  node: string;
}

/** A node placement would fill past its capacity: residency of the plan cannot reach 100 %. */
export interface OverCapacity {
  node: string;
  bytes: number;
  capacity: number;
}

export interface WarmPlan {
  files: number;
  /** In warm order, each once. */
  chunks: WarmChunk[];
  bytes: number;
  /** Chunk × owner pairs among the members, in warm order. */
  placements: WarmPlacement[];
  overCapacity: OverCapacity[];
}

export interface PlanWarmupOptions {
  /** The files to warm (a file, or every file under a folder). */
  entries: Entry[];
  members: readonly CacheMember[];
  replicas: number;
  placement?: PlacementFn;
}

/**
 * What a warmup of some files means on the current members: which chunk goes to which owner, in
 * the order readers need them, and which nodes are too small to hold their share. Both warmups use
 * it: `ferry warmup` without a replicator API (the nodes fill themselves now) and the replicator's
 * queued warmup (one fill job per placement).
 */
export function planWarmup(options: PlanWarmupOptions): WarmPlan {
  const placement = options.placement ?? rendezvousOwners;
  const chunks = warmOrder(options.entries);
  const placements = chunks.flatMap((c) =>
    placement(options.members, c.id, options.replicas).map((owner) => ({ chunk: c.id, size: c.size, node: owner.id })),
  );
  const overCapacity: OverCapacity[] = [];
  for (const [node, bytes] of plannedBytes(options.members, options.replicas, chunks, placement)) {
    const capacity = options.members.find((m) => m.id === node)?.capacity ?? 0;
    if (bytes > capacity) overCapacity.push({ node, bytes, capacity });
  }
  return {
    files: options.entries.length,
    chunks,
    bytes: chunks.reduce((sum, c) => sum + c.size, 0),
    placements,
    overCapacity,
  };
}
