import { createHash } from 'node:crypto';

/** What placement needs of a cache node. */
export interface Weighted {
  readonly id: string;
  readonly weight: number;
}

/** The nodes that should hold a chunk, best first. */
export type PlacementFn = <T extends Weighted>(members: readonly T[], chunkId: string, replicas: number) => T[];

const TWO_POW_32 = 2 ** 32;
const TWO_POW_53 = 2 ** 53;

/**
 * A uniform number in (0, 1) for a (node, chunk) pair: the first 53 bits of
 * sha256(nodeId NUL chunkId), plus one half so it is never 0 or 1. sha256 rather than a faster
 * hash because every client — possibly in another language — must compute exactly the same value,
 * and it costs ~1 µs next to moving a chunk of megabytes.
 */
export function unitHash(nodeId: string, chunkId: string): number {
  const digest = createHash('sha256').update(nodeId).update('\0').update(chunkId).digest();
  const high = digest.readUInt32BE(0) >>> 11; // 21 bits
  const low = digest.readUInt32BE(4); // 32 bits
  return (high * TWO_POW_32 + low + 0.5) / TWO_POW_53;
}

/**
 * Weighted rendezvous score: -weight / ln(u). The node with the highest score owns the chunk, and
 * a node of weight w wins a share w / Σw of all chunks (the scores are exponential variables with
 * rate 1/w). Adding or removing a node only moves the chunks it wins or held.
 */
export function rendezvousScore(nodeId: string, chunkId: string, weight: number): number {
  return -weight / Math.log(unitHash(nodeId, chunkId));
}

/**
 * The `replicas` owners of a chunk, best first (fewer when there are fewer nodes). Nodes with a
 * weight that is not a positive number own nothing. Ties, which need a hash collision, go to the
 * smaller id so that every client orders them the same way.
 */
export const rendezvousOwners: PlacementFn = (members, chunkId, replicas) => {
  const scored = members
    .filter((m) => Number.isFinite(m.weight) && m.weight > 0)
    .map((m) => ({ m, score: rendezvousScore(m.id, chunkId, m.weight) }));
  scored.sort((a, b) => b.score - a.score || (a.m.id < b.m.id ? -1 : a.m.id > b.m.id ? 1 : 0));
  return scored.slice(0, Math.max(0, replicas)).map((s) => s.m);
};
