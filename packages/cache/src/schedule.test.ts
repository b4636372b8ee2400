import { describe, expect, it } from 'vitest';
import { rendezvousOwners } from './placement.js';
import { NodeLoad, readWindow } from './schedule.js';

const node = (id: string) => ({ id, weight: 1 });

describe('NodeLoad: which owner a reader asks for a chunk', () => {
  it('asks the least busy owner first', () => {
    const load = new NodeLoad();
    const [a, b] = [node('a'), node('b')];
    load.start('a');
    expect(load.order([a, b]).map((o) => o.id)).toEqual(['b', 'a']);
    load.end('a');
    expect(load.of('a')).toBe(0);
  });

  it('among owners as busy as each other, asks the one it asked least so far, then the first in placement order', () => {
    const load = new NodeLoad();
    const [a, b, c] = [node('a'), node('b'), node('c')];
    expect(load.order([a, b, c]).map((o) => o.id)).toEqual(['a', 'b', 'c']);
    load.start('a');
    load.end('a');
    // Nobody is busy now; a has been asked once, b and c never.
    expect(load.order([a, b, c]).map((o) => o.id)).toEqual(['b', 'c', 'a']);
    expect(load.asked('a')).toBe(1);
  });

  it('splits the chunks of which one node is always the first owner evenly between their owners', () => {
    const load = new NodeLoad();
    const asked = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const owner = load.order([node('first'), node('second')])[0] as { id: string };
      load.start(owner.id);
      asked.set(owner.id, (asked.get(owner.id) ?? 0) + 1);
      load.end(owner.id);
    }
    expect(Object.fromEntries(asked)).toEqual({ first: 50, second: 50 });
  });

  it('over 200 nodes and 6,000 chunks placed by rendezvous, asks no node more than 10 % over the mean (first owners alone: over 40 %)', () => {
    const members = Array.from({ length: 200 }, (_, i) => node(`n${i}`));
    const load = new NodeLoad();
    const asked = new Map<string, number>();
    const first = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const owners = rendezvousOwners(members, `sha256-chunk-${i}`, 2);
      first.set(owners[0]?.id ?? '', (first.get(owners[0]?.id ?? '') ?? 0) + 1);
      const owner = load.order(owners)[0] as { id: string };
      load.start(owner.id);
      asked.set(owner.id, (asked.get(owner.id) ?? 0) + 1);
      load.end(owner.id);
    }
    const spread = (counts: Map<string, number>) => Math.max(...counts.values()) / (6000 / 200) - 1;
    expect(spread(first)).toBeGreaterThan(0.4);
    expect(spread(asked)).toBeLessThan(0.1);
  });

  it('keeps its own counts when readers share one numbering of the nodes', () => {
    const slots = new Map<string, number>();
    const [one, two] = [new NodeLoad(slots), new NodeLoad(slots)];
    const [a, b] = [node('a'), node('b')];
    one.start('a');
    expect(two.of('a')).toBe(0);
    expect(two.order([a, b]).map((o) => o.id)).toEqual(['a', 'b']);
    expect(one.order([a, b]).map((o) => o.id)).toEqual(['b', 'a']);
    two.start('b');
    expect(one.asked('b')).toBe(0);
    expect(two.asked('b')).toBe(1);
  });
});

describe('readWindow', () => {
  it('is nodes × requests per node, with at least one request per node', () => {
    expect(readWindow(10, 2)).toBe(20);
    expect(readWindow(10, 0)).toBe(10);
    expect(readWindow(0, 2)).toBe(0);
  });
});
