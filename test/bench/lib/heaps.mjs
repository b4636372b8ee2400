// Binary heaps on typed arrays for the fan-out simulation: millions of pushes without garbage.

/** Min-heap of (key, value) pairs: a float key, a 32-bit integer value. */
export class KeyHeap {
  constructor(capacity = 64) {
    this.keys = new Float64Array(capacity);
    this.values = new Int32Array(capacity);
    this.size = 0;
  }

  push(key, value) {
    if (this.size === this.keys.length) this.#grow();
    const keys = this.keys;
    const values = this.values;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[parent] <= key) break;
      keys[i] = keys[parent];
      values[i] = values[parent];
      i = parent;
    }
    keys[i] = key;
    values[i] = value;
  }

  /** The smallest key (Infinity when empty). */
  peekKey() {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.keys[0];
  }

  /** Removes the smallest pair and returns its value; its key was `peekKey()`. */
  pop() {
    const keys = this.keys;
    const values = this.values;
    const top = values[0];
    const n = --this.size;
    if (n === 0) return top;
    const key = keys[n];
    const value = values[n];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && keys[child + 1] < keys[child]) child += 1;
      if (keys[child] >= key) break;
      keys[i] = keys[child];
      values[i] = values[child];
      i = child;
    }
    keys[i] = key;
    values[i] = value;
    return top;
  }

  #grow() {
    const keys = new Float64Array(this.keys.length * 2);
    keys.set(this.keys);
    const values = new Int32Array(this.values.length * 2);
    values.set(this.values);
    this.keys = keys;
    this.values = values;
  }
}

/** A fixed set of items 0..n-1, each with a key that changes: the one with the smallest key on top. */
export class IndexedHeap {
  constructor(n) {
    this.key = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
    this.heap = Int32Array.from({ length: n }, (_, i) => i);
    this.pos = Int32Array.from({ length: n }, (_, i) => i);
    this.n = n;
  }

  topKey() {
    return this.key[this.heap[0]];
  }

  topItem() {
    return this.heap[0];
  }

  set(item, key) {
    const old = this.key[item];
    this.key[item] = key;
    if (key < old) this.#up(this.pos[item]);
    else if (key > old) this.#down(this.pos[item]);
  }

  #up(i) {
    const { heap, pos, key } = this;
    const item = heap[i];
    const k = key[item];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (key[p] <= k) break;
      heap[i] = p;
      pos[p] = i;
      i = parent;
    }
    heap[i] = item;
    pos[item] = i;
  }

  #down(i) {
    const { heap, pos, key, n } = this;
    const item = heap[i];
    const k = key[item];
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && key[heap[child + 1]] < key[heap[child]]) child += 1;
      const c = heap[child];
      if (key[c] >= k) break;
      heap[i] = c;
      pos[c] = i;
      i = child;
    }
    heap[i] = item;
    pos[item] = i;
  }
}

/**
 * The transfers on one processor-sharing server, smallest finish tag first. A tag is the server's
 * virtual clock at arrival plus the size; the clock never goes back and nearly every transfer is a
 * whole chunk, so tags nearly always arrive in order: those go to a ring buffer (O(1)), the rare
 * one smaller than the last (a file's short last chunk) to a heap beside it.
 */
export class TagQueue {
  constructor(capacity = 16) {
    this.keys = new Float64Array(capacity);
    this.values = new Int32Array(capacity);
    this.head = 0;
    this.length = 0;
    this.odd = new KeyHeap(4);
  }

  get size() {
    return this.length + this.odd.size;
  }

  push(key, value) {
    if (this.length > 0 && key < this.keys[(this.head + this.length - 1) & (this.keys.length - 1)]) {
      this.odd.push(key, value);
      return;
    }
    if (this.length === this.keys.length) this.#grow();
    const at = (this.head + this.length) & (this.keys.length - 1);
    this.keys[at] = key;
    this.values[at] = value;
    this.length += 1;
  }

  peekKey() {
    const ring = this.length === 0 ? Number.POSITIVE_INFINITY : this.keys[this.head];
    const odd = this.odd.peekKey();
    return Math.min(odd, ring);
  }

  pop() {
    if (this.odd.size > 0 && (this.length === 0 || this.odd.peekKey() < this.keys[this.head])) return this.odd.pop();
    const value = this.values[this.head];
    this.head = (this.head + 1) & (this.keys.length - 1);
    this.length -= 1;
    return value;
  }

  #grow() {
    const n = this.keys.length;
    const keys = new Float64Array(n * 2);
    const values = new Int32Array(n * 2);
    for (let i = 0; i < this.length; i++) {
      keys[i] = this.keys[(this.head + i) & (n - 1)];
      values[i] = this.values[(this.head + i) & (n - 1)];
    }
    this.keys = keys;
    this.values = values;
    this.head = 0;
  }
}
