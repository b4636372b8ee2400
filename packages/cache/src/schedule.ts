/**
 * How one reader spreads its chunk requests over the cache nodes. Pure (no I/O, no clock), so that
 * the cache tier and the fan-out simulation of the benchmarks (test/bench/scenarios/fanout.mjs)
 * take the very same decisions.
 */

/** Chunk requests a sequential reader keeps in flight to keep `nodes` nodes busy. */
export function readWindow(nodes: number, perNode: number): number {
  return Math.max(0, nodes) * Math.max(1, perNode);
}

/**
 * What one reader has asked of each node: requests in flight now, and requests so far. A chunk
 * goes to the least busy of its owners; among owners as busy as each other, to the one this reader
 * has asked least so far, then to the best in placement order. The reader sees only its own
 * requests, not those of the other readers.
 *
 * Why "asked least so far": with few requests in flight (most owners idle as far as one reader can
 * tell) placement order alone sends nearly every chunk to its first owner, so a node's upload
 * follows how many chunks it owns first, which varies a lot between nodes (at 1,000 nodes the
 * busiest owns nearly twice the mean). Counting what it asked, each reader splits its chunks evenly
 * over the nodes, and so do all readers together.
 */
export class NodeLoad {
  // Counts per node in dense arrays, at the node's slot: one Map lookup per node per chunk, with a
  // small number as its value, where a record per node would cost a lookup and a pointer to follow.
  readonly #slots: Map<string, number>;
  readonly #busy: number[] = [];
  readonly #asked: number[] = [];

  /**
   * `slots` numbers the node ids (node id → slot in this reader's counts). Readers in one process
   * may share one numbering; the simulation of a thousand readers does, so that one small map
   * serves them all. Default: this reader's own.
   */
  constructor(slots: Map<string, number> = new Map()) {
    this.#slots = slots;
  }

  /** This reader's requests in flight at `node`. */
  of(node: string): number {
    return this.#count(this.#busy, this.#slots.get(node));
  }

  /** This reader's requests to `node` so far. */
  asked(node: string): number {
    return this.#count(this.#asked, this.#slots.get(node));
  }

  /** `owners` (in placement order) in the order to try them. */
  order<T extends { readonly id: string }>(owners: readonly T[]): T[] {
    const sorted = owners.slice();
    const slots = sorted.map((o) => this.#slots.get(o.id));
    // Insertion sort, stable: there are `replicas` owners (a handful), and it runs once per chunk.
    for (let i = 1; i < sorted.length; i++) {
      const owner = sorted[i] as T;
      const slot = slots[i];
      let j = i - 1;
      for (; j >= 0 && this.#after(slots[j], slot); j--) {
        sorted[j + 1] = sorted[j] as T;
        slots[j + 1] = slots[j];
      }
      sorted[j + 1] = owner;
      slots[j + 1] = slot;
    }
    return sorted;
  }

  start(node: string): void {
    let slot = this.#slots.get(node);
    if (slot === undefined) {
      slot = this.#slots.size;
      this.#slots.set(node, slot);
    }
    while (this.#busy.length <= slot) {
      this.#busy.push(0);
      this.#asked.push(0);
    }
    this.#busy[slot] = (this.#busy[slot] as number) + 1;
    this.#asked[slot] = (this.#asked[slot] as number) + 1;
  }

  end(node: string): void {
    const slot = this.#slots.get(node);
    if (slot !== undefined && this.#count(this.#busy, slot) > 0) this.#busy[slot] = (this.#busy[slot] as number) - 1;
  }

  #count(counts: number[], slot: number | undefined): number {
    return slot === undefined ? 0 : (counts[slot] ?? 0);
  }

  /** Whether the owner at slot `a` is tried after the one at slot `b` (undefined: a node never asked). */
  #after(a: number | undefined, b: number | undefined): boolean {
    const busyA = this.#count(this.#busy, a);
    const busyB = this.#count(this.#busy, b);
    if (busyA !== busyB) return busyA > busyB;
    return this.#count(this.#asked, a) > this.#count(this.#asked, b);
  }
}
