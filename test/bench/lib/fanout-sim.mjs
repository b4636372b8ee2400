// The event engine of the fan-out simulation (scenarios/fanout.mjs wires in the real placement and
// the real reader decisions). Events are per stage of a chunk transfer, never per byte.
//
// Network: every host has a full-duplex NIC; each direction is an egalitarian processor-sharing
// server (the transfers it carries share its bandwidth equally, as long TCP flows do). The region
// store is one more such server, its aggregate bandwidth shared by the reads in flight, each read
// starting after the store's latency. A transfer passes the sender's uplink and then the receiver's
// downlink (a store read: the store, then the reader's downlink), a chunk at a time (store and
// forward). That keeps every event O(log n): a server keeps a virtual clock (the bytes each of its
// transfers has received so far); a transfer's finish tag is that clock at its arrival plus its
// size, so only the smallest tag of each server needs a place in the event queue.
//
// Cache nodes: single-flight read-through from the store; the limits of a node (requests in
// progress, bytes of distinct chunks they hold) answer "busy" beyond them, and the reader then tries
// the chunk's next owner, and after the last one reads the store itself, as the cache tier does.
import { IndexedHeap, KeyHeap, TagQueue } from './heaps.mjs';

// What a flow on a server is (low 3 bits of its value; the rest is a request or fill record).
const REQ_UP = 0; // node → reader: the node's uplink
const REQ_DOWN = 1; // node → reader: the reader's downlink
const FILL_STORE = 2; // store → node: the store
const FILL_DOWN = 3; // store → node: the node's downlink
const DIRECT_STORE = 4; // store → reader, around the cache: the store (then REQ_DOWN)
// Timed events (low 2 bits).
const FILL_START = 0; // a fill's first byte from the store
const DIRECT_START = 1; // a direct store read's first byte
const READER_START = 2;

/** Growable Int32 columns with a free list: records of requests or fills; `wide` has `width` values a record. */
class Records {
  constructor(columns, width = 0, capacity = 1 << 16) {
    this.columns = columns;
    for (const c of columns) this[c] = new Int32Array(capacity);
    this.width = width;
    this.wide = new Int32Array(capacity * width);
    this.free = [];
    this.used = 0;
    this.capacity = capacity;
  }

  alloc() {
    if (this.free.length) return this.free.pop();
    if (this.used === this.capacity) {
      this.capacity *= 2;
      for (const c of this.columns) {
        const grown = new Int32Array(this.capacity);
        grown.set(this[c]);
        this[c] = grown;
      }
      const wide = new Int32Array(this.capacity * this.width);
      wide.set(this.wide);
      this.wide = wide;
    }
    return this.used++;
  }

  release(id) {
    this.free.push(id);
  }
}

/**
 * Run one fan-out; returns per-host finish times and bytes.
 *
 * `readers[h]` takes host h's decisions: `order` (the chunk index at each position of its read,
 * undefined for file order), `window` (requests it keeps in flight), `unordered` (a slot is free
 * as soon as its chunk is done; otherwise once every chunk before it in the read is), `route(c)`
 * (the owners of chunk c to try, in order: members with an `index`), `start(owner)` and
 * `end(owner)` (a request to the owner with that index begins, is over).
 *
 * `owners` is the placement: `replicas` node indices per chunk, best first (-1 where fewer).
 *
 * @param {{hosts: number, sizes: number[], nicBytesPerSecond: number, storeBytesPerSecond: number,
 *   storeLatency: number, starts: Float64Array, owners: Int32Array, replicas: number, readers: object[],
 *   maxStreams: number, maxBytes: number}} o
 */
export function simulate(o) {
  const N = o.hosts;
  const sizes = o.sizes;
  const n = sizes.length;
  const readers = o.readers;
  const maxStreams = o.maxStreams > 0 ? o.maxStreams : Number.POSITIVE_INFINITY;
  const maxBytes = o.maxBytes > 0 ? o.maxBytes : Number.POSITIVE_INFINITY;
  const STORE = 2 * N;
  const servers = 2 * N + 1;
  const capacity = new Float64Array(servers).fill(o.nicBytesPerSecond);
  capacity[STORE] = o.storeBytesPerSecond;
  const active = new Int32Array(servers);
  const vclock = new Float64Array(servers);
  const since = new Float64Array(servers);
  const flows = Array.from({ length: servers }, () => new TagQueue(16));
  const due = new IndexedHeap(servers);
  const timed = new KeyHeap(1 << 12);

  const R = o.replicas;
  /** A request: its reader, chunk, place in the read, next waiter of a fill, and the owners to try in order. */
  const req = new Records(['reader', 'chunk', 'pos', 'next', 'attempt', 'tries'], R);
  const fill = new Records(['owner', 'chunk', 'head']);
  // State of a chunk on a node is kept per (chunk, rank of the node among its owners): only owners
  // are asked for a chunk, and n × R entries stay in the processor's cache where N × n would not.
  const ranks = o.owners;
  const slot = (c, node) => {
    for (let r = 0; r < R; r++) if (ranks[c * R + r] === node) return c * R + r;
    throw new Error(`fan-out simulation: node ${node} does not own chunk ${c}`);
  };
  /** Per (chunk, owner): 0 absent, 1 being filled, 2 held. */
  const held = new Uint8Array(n * R);
  /** The fill in progress per (chunk, owner). */
  const filling = new Int32Array(n * R).fill(-1);
  /** Requests a node has admitted and not finished sending, per (chunk, owner) and per node. */
  const atNode = new Uint32Array(n * R);
  const streams = new Int32Array(N);
  const bytesHeld = new Float64Array(N);
  const peakStreams = new Int32Array(N);
  const peakBytes = new Float64Array(N);
  /** Requests finished on the reader's own host without a byte on its NIC. */
  const ready = [];

  const issued = new Int32Array(N);
  const prefix = new Int32Array(N);
  const doneCount = new Int32Array(N);
  /** Chunks done per position, for readers that release their slots in order. */
  const doneAt = readers.some((r) => !r.unordered) ? new Uint8Array(N * n) : undefined;
  const finish = new Float64Array(N).fill(Number.NaN);
  const upBytes = new Float64Array(N);
  const downBytes = new Float64Array(N);
  let fillBytes = 0;
  let directBytes = 0;
  let refused = 0;
  let events = 0;
  let finished = 0;

  const rate = (s) => capacity[s] / active[s];
  const advance = (s, t) => {
    if (active[s] > 0) vclock[s] += (t - since[s]) * rate(s);
    since[s] = t;
  };
  const reschedule = (s) => {
    due.set(s, active[s] === 0 ? Number.POSITIVE_INFINITY : since[s] + (flows[s].peekKey() - vclock[s]) / rate(s));
  };
  const enter = (s, flow, size, t) => {
    advance(s, t);
    active[s] += 1;
    flows[s].push(vclock[s] + size, flow);
    reschedule(s);
  };

  const owner = (q) => req.wide[q * R + req.attempt[q]];

  const issue = (h, t) => {
    const reader = readers[h];
    const order = reader.order;
    const window = reader.window;
    const released = reader.unordered ? doneCount : prefix;
    while (issued[h] < n && issued[h] - released[h] < window) {
      const pos = issued[h]++;
      const c = order ? order[pos] : pos;
      const q = req.alloc();
      req.reader[q] = h;
      req.chunk[q] = c;
      req.pos[q] = pos;
      req.attempt[q] = 0;
      const route = reader.route(c);
      req.tries[q] = route.length;
      for (let r = 0; r < route.length; r++) req.wide[q * R + r] = route[r].index;
      reader.start(req.wide[q * R]);
      arrive(q, t);
    }
  };

  const complete = (q, t) => {
    const h = req.reader[q];
    if (req.attempt[q] < req.tries[q]) readers[h].end(owner(q));
    doneCount[h] += 1;
    if (!readers[h].unordered) {
      const base = h * n;
      doneAt[base + req.pos[q]] = 1;
      while (prefix[h] < n && doneAt[base + prefix[h]] === 1) prefix[h] += 1;
    }
    req.release(q);
    if (doneCount[h] === n) {
      finish[h] = t;
      finished += 1;
    } else issue(h, t);
  };

  const leave = (node, c) => {
    const k = slot(c, node);
    if (--atNode[k] === 0) bytesHeld[node] -= sizes[c];
    streams[node] -= 1;
  };

  /** A node sends (or, to the reader on its own host, hands over) a chunk it holds. */
  const serve = (q, t) => {
    const node = owner(q);
    if (node === req.reader[q]) {
      leave(node, req.chunk[q]);
      ready.push(q);
    } else enter(node, q * 8 + REQ_UP, sizes[req.chunk[q]], t);
  };

  const arrive = (q, t) => {
    const h = req.reader[q];
    const c = req.chunk[q];
    const node = owner(q);
    const k = slot(c, node);
    // The node's admission: a request beyond its limits is answered "busy" and holds nothing.
    const extra = atNode[k] > 0 ? 0 : sizes[c];
    if (streams[node] >= maxStreams || bytesHeld[node] + extra > maxBytes) {
      refused += 1;
      readers[h].end(node);
      req.attempt[q] += 1;
      if (req.attempt[q] < req.tries[q]) {
        readers[h].start(owner(q));
        return arrive(q, t);
      }
      // No owner took it: the reader reads the region's store itself.
      timed.push(t + o.storeLatency, q * 4 + DIRECT_START);
      return;
    }
    atNode[k] += 1;
    bytesHeld[node] += extra;
    if (++streams[node] > peakStreams[node]) peakStreams[node] = streams[node];
    if (bytesHeld[node] > peakBytes[node]) peakBytes[node] = bytesHeld[node];
    if (held[k] === 2) return serve(q, t);
    if (held[k] === 1) {
      const f = filling[k];
      req.next[q] = fill.head[f];
      fill.head[f] = q;
      return;
    }
    // Single-flight on the node: one read-through per chunk, every later request waits for it.
    held[k] = 1;
    const f = fill.alloc();
    fill.owner[f] = node;
    fill.chunk[f] = c;
    fill.head[f] = q;
    req.next[q] = -1;
    filling[k] = f;
    timed.push(t + o.storeLatency, f * 4 + FILL_START);
  };

  const flowDone = (flow, t) => {
    const id = flow >> 3;
    switch (flow & 7) {
      case REQ_UP: {
        const node = owner(id);
        const c = req.chunk[id];
        upBytes[node] += sizes[c];
        leave(node, c);
        return enter(N + req.reader[id], id * 8 + REQ_DOWN, sizes[c], t);
      }
      case REQ_DOWN:
        downBytes[req.reader[id]] += sizes[req.chunk[id]];
        return complete(id, t);
      case DIRECT_STORE:
        directBytes += sizes[req.chunk[id]];
        return enter(N + req.reader[id], id * 8 + REQ_DOWN, sizes[req.chunk[id]], t);
      case FILL_STORE:
        return enter(N + fill.owner[id], id * 8 + FILL_DOWN, sizes[fill.chunk[id]], t);
      case FILL_DOWN: {
        const node = fill.owner[id];
        const c = fill.chunk[id];
        const k = slot(c, node);
        fillBytes += sizes[c];
        downBytes[node] += sizes[c];
        held[k] = 2;
        filling[k] = -1;
        let q = fill.head[id];
        fill.release(id);
        while (q !== -1) {
          const next = req.next[q];
          serve(q, t);
          q = next;
        }
        return;
      }
    }
  };

  for (let h = 0; h < N; h++) timed.push(o.starts[h], h * 4 + READER_START);
  let now = 0;
  while (finished < N) {
    if (ready.length) {
      complete(ready.pop(), now);
      continue;
    }
    const ts = due.topKey();
    const te = timed.peekKey();
    if (ts === Number.POSITIVE_INFINITY && te === Number.POSITIVE_INFINITY) throw new Error('fan-out simulation stalled');
    events += 1;
    if (ts <= te) {
      const s = due.topItem();
      now = ts;
      advance(s, now);
      const heap = flows[s];
      // The finishing transfer's tag is the clock now, up to rounding.
      if (heap.peekKey() > vclock[s]) vclock[s] = heap.peekKey();
      const flow = heap.pop();
      active[s] -= 1;
      reschedule(s);
      flowDone(flow, now);
    } else {
      now = te;
      const value = timed.pop();
      const id = value >> 2;
      const kind = value & 3;
      if (kind === FILL_START) enter(STORE, id * 8 + FILL_STORE, sizes[fill.chunk[id]], now);
      else if (kind === DIRECT_START) enter(STORE, id * 8 + DIRECT_STORE, sizes[req.chunk[id]], now);
      else issue(id, now);
    }
  }
  return { window: readers[0]?.window, finish, upBytes, downBytes, fillBytes, directBytes, refused, events, peakStreams, peakBytes };
}
