import { randomBytes } from 'node:crypto';
import { rendezvousOwners, unitHash } from '@ferry/cache';
import { type ChunkId, nativeChunkId, sha256Hex } from '@ferry/core';
import { describe, expect, it } from 'vitest';

const ids: ChunkId[] = Array.from({ length: 3000 }, () => nativeChunkId(sha256Hex(randomBytes(16))));
const three = [
  { id: 'n1', weight: 1 },
  { id: 'n2', weight: 2 },
  { id: 'n3', weight: 3 },
];
const four = [...three, { id: 'n4', weight: 2 }];

function placements(members: typeof four, replicas: number): Map<ChunkId, string[]> {
  return new Map(ids.map((id) => [id, rendezvousOwners(members, id, replicas).map((m) => m.id)]));
}

describe('weighted rendezvous placement', () => {
  it('gives 3,000 chunks to nodes of weight 1:2:3 within ±5 % of their shares', () => {
    const counts = new Map<string, number>();
    for (const [, [owner]] of placements(three, 1)) counts.set(owner as string, (counts.get(owner as string) ?? 0) + 1);
    const shares = three.map((n) => ({ id: n.id, want: n.weight / 6, got: (counts.get(n.id) ?? 0) / ids.length }));
    for (const s of shares) expect(Math.abs(s.got - s.want), s.id).toBeLessThanOrEqual(0.05);

    // With 2 replicas every chunk has two distinct owners, and the heavier nodes still hold more.
    const two = placements(three, 2);
    const held = new Map<string, number>();
    for (const owners of two.values()) {
      expect(new Set(owners).size).toBe(2);
      for (const o of owners) held.set(o, (held.get(o) ?? 0) + 1);
    }
    expect(held.get('n1') ?? 0).toBeLessThan(held.get('n2') ?? 0);
    expect(held.get('n2') ?? 0).toBeLessThan(held.get('n3') ?? 0);
  });

  it('moves at most 1/4 + 5 % of the placements when a 4th node joins, and only onto it', () => {
    for (const replicas of [1, 2]) {
      const before = placements(three, replicas);
      const after = placements(four, replicas);
      let moved = 0;
      for (const id of ids) {
        const was = new Set(before.get(id));
        for (const owner of after.get(id) ?? []) {
          if (was.has(owner)) continue;
          moved += 1;
          expect(owner).toBe('n4');
        }
      }
      const fraction = moved / (replicas * ids.length);
      expect(fraction).toBeLessThanOrEqual(0.25 + 0.05);
    }
  });

  it('is the same for every client whatever order it lists the members in', () => {
    const shuffled = [...three].reverse();
    for (const id of ids.slice(0, 200)) {
      expect(rendezvousOwners(shuffled, id, 2).map((m) => m.id)).toEqual(rendezvousOwners(three, id, 2).map((m) => m.id));
    }
    const u = unitHash('n1', ids[0] as string);
    expect(u > 0 && u < 1).toBe(true);
    // Fixed vector: a client in another language must compute the same value.
    expect(unitHash('n1', `sha256-${'0'.repeat(64)}`)).toMatchInlineSnapshot(`0.281654843844168`);
    expect(rendezvousOwners([{ id: 'x', weight: 0 }, ...three], ids[0] as string, 8).map((m) => m.id)).not.toContain('x');
  });
});
