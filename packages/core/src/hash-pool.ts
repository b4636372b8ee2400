import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { UnavailableError } from './errors.js';

/**
 * The thread's code, as source: a file beside this one would not exist when the TypeScript
 * sources run untranspiled (tests), and the worker needs nothing but node:crypto. A session is a
 * hash whose state lives in one thread, fed in order. Bytes always arrive in shared memory, so
 * no message moves or copies them.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const sessions = new Map();
// The pool's staging slots, sent once each: later messages name a slot instead of carrying it
// (a SharedArrayBuffer in a message costs more than hashing a slot's worth).
const slots = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'forget') {
      slots.delete(m.slot);
      return;
    }
    if (m.slot !== undefined) {
      if (m.bytes) slots.set(m.slot, m.bytes.buffer);
      m.bytes = new Uint8Array(slots.get(m.slot), 0, m.length);
    }
    if (m.op === 'hash') {
      parentPort.postMessage({ id: m.id, hex: createHash('sha256').update(m.bytes).digest('hex') });
    } else if (m.op === 'update') {
      let hash = sessions.get(m.session);
      if (!hash) sessions.set(m.session, (hash = createHash('sha256')));
      hash.update(m.bytes);
      parentPort.postMessage({ id: m.id });
    } else if (m.op === 'digest') {
      const hash = sessions.get(m.session) || createHash('sha256');
      sessions.delete(m.session);
      parentPort.postMessage({ id: m.id, hex: hash.digest('hex') });
    } else if (m.op === 'drop') {
      sessions.delete(m.session);
    }
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) });
  }
});
`;

export interface HashPoolOptions {
  /** Threads (default: the cores this process may use). */
  threads?: number;
  /**
   * Inputs smaller than this are hashed on the calling thread (default 64 KiB): a message to a
   * thread and back costs about what hashing that much costs.
   */
  inlineBelow?: number;
}

interface Pending {
  resolve(hex: string | undefined): void;
  reject(err: Error): void;
  thread: Thread;
  bytes: number;
}

interface Thread {
  worker: Worker;
  /** Tasks sent and not answered: the load that picks a thread, and whether it keeps the process up. */
  busy: number;
  /** Bytes sent and not answered (the tie-breaker between threads with as many tasks). */
  bytes: number;
}

/** One hash fed in order; its state lives in one thread. */
export interface HashSession {
  /**
   * Feed bytes; the caller must not change them until the promise resolves. Large bytes in
   * shared memory are read where they are (the promise says when the thread is done with them);
   * other bytes are copied into the pool's shared slots (the promise resolves once copied, or
   * later while much of this session is still queued).
   */
  update(bytes: Uint8Array): Promise<void>;
  /** The hex sha256 of everything fed; the session is finished. */
  digest(): Promise<string>;
  /** Forget the session (a stream that failed); nothing waits on it. */
  abort(): void;
}

/** Shared staging slots: non-shared inputs are copied into these, one message per slot. */
const SLOT = 1 << 20;
/** Slot bytes in flight per session before `update` makes the caller wait. */
const IN_FLIGHT = 4 * SLOT;
/** Slots kept for reuse; more may be made while many sessions run at once. */
const KEEP_SLOTS = 64;

/** A staging slot: shared memory the threads that have seen it know by its number. */
interface Slot {
  id: number;
  bytes: Buffer;
  known: Set<Thread>;
}

/**
 * sha256 on a pool of worker threads, so hashing never runs on the event loop of a busy process
 * and one process can use every core. Buffers in shared memory are read by the threads where they
 * are (two threads may read one chunk at once: its own hash and its file's); other bytes are
 * copied into reusable shared slots. Nothing is moved or cloned by a message: every moved or
 * cloned ArrayBuffer is new external memory to the receiving thread, and the garbage collections
 * it triggers cost more than the copy. Threads do not keep the process alive while idle.
 *
 * worker_threads directly rather than a pool library: a session must stay on the thread that
 * holds its hash state, which general pools (piscina) do not offer, and the whole pool is one
 * message type.
 */
export class HashPool {
  readonly threads: number;
  readonly #inlineBelow: number;
  readonly #pool: Thread[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #slots: Slot[] = [];
  #nextSlot = 1;
  #nextId = 1;
  #nextSession = 1;
  #closed = false;

  constructor(options: HashPoolOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
    this.#inlineBelow = options.inlineBelow ?? 64 * 1024;
  }

  /** Threads started so far (a pool starts them as work needs them, up to `threads`). */
  get running(): number {
    return this.#pool.length;
  }

  /** The hex sha256 of `bytes`. */
  async sha256(bytes: Uint8Array): Promise<string> {
    if (bytes.byteLength < this.#inlineBelow) return createHash('sha256').update(bytes).digest('hex');
    if (bytes.buffer instanceof SharedArrayBuffer) {
      return (await this.#send(this.#pick(), { op: 'hash', bytes }, bytes.byteLength)) as string;
    }
    const session = this.session();
    await session.update(bytes);
    return session.digest();
  }

  /**
   * An incremental hash on one thread, for bytes that arrive in order (a whole file, a stream).
   * Until the session has seen `inlineBelow` bytes it keeps a copy of them and takes no thread and
   * no staging slot: a small stream (a chunk of a small imported file) is hashed on the calling
   * thread at `digest`. Thousands of small sessions at once (a mirror copying a batch of small
   * files) each took a 1 MiB shared slot before; shared memory is invisible to V8's collector, so
   * the slots dropped past the kept 64 grew a replicator to 17 GiB.
   */
  session(): HashSession {
    let held: Buffer[] | undefined = [];
    let heldBytes = 0;
    let threaded: HashSession | undefined;
    return {
      update: async (bytes) => {
        if (held && heldBytes + bytes.byteLength < this.#inlineBelow) {
          held.push(Buffer.from(bytes));
          heldBytes += bytes.byteLength;
          return;
        }
        if (!threaded) {
          threaded = this.#threadSession();
          for (const piece of held ?? []) await threaded.update(piece);
          held = undefined;
        }
        await threaded.update(bytes);
      },
      digest: async () => {
        if (threaded) return threaded.digest();
        const hash = createHash('sha256');
        for (const piece of held ?? []) hash.update(piece);
        held = undefined;
        return hash.digest('hex');
      },
      abort: () => {
        held = undefined;
        threaded?.abort();
      },
    };
  }

  #threadSession(): HashSession {
    const thread = this.#pick();
    const session = this.#nextSession++;
    let stage: Slot | undefined;
    let staged = 0;
    let inFlight = 0;
    const waiters: Array<() => void> = [];
    let failure: Error | undefined;
    const flush = () => {
      if (!stage || staged === 0) return;
      const slot = stage;
      const length = staged;
      stage = undefined;
      staged = 0;
      inFlight += length;
      this.#send(thread, { op: 'update', session, slot, length }, length).then(
        () => {
          this.#giveSlot(slot);
          inFlight -= length;
          while (inFlight <= IN_FLIGHT && waiters.length > 0) waiters.shift()?.();
        },
        (err: Error) => {
          failure = err;
          for (const wake of waiters.splice(0)) wake();
        },
      );
    };
    return {
      update: async (bytes) => {
        if (failure) throw failure;
        if (bytes.buffer instanceof SharedArrayBuffer && bytes.byteLength >= SLOT / 4) {
          flush();
          await this.#send(thread, { op: 'update', session, bytes }, bytes.byteLength);
          return;
        }
        for (let at = 0; at < bytes.byteLength; ) {
          stage ??= this.#slots.pop() ?? { id: this.#nextSlot++, bytes: Buffer.from(new SharedArrayBuffer(SLOT)), known: new Set() };
          const take = Math.min(SLOT - staged, bytes.byteLength - at);
          stage.bytes.set(bytes.subarray(at, at + take), staged);
          staged += take;
          at += take;
          if (staged === SLOT) flush();
          while (inFlight > IN_FLIGHT && !failure) await new Promise<void>((resolve) => waiters.push(resolve));
          if (failure) throw failure;
        }
      },
      digest: async () => {
        flush();
        if (failure) throw failure;
        return (await this.#send(thread, { op: 'digest', session }, 0)) as string;
      },
      abort: () => {
        if (stage) this.#giveSlot(stage);
        stage = undefined;
        if (!this.#closed) thread.worker.postMessage({ op: 'drop', session });
      },
    };
  }

  /** Stop the threads; tasks still waiting fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const threads = this.#pool.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  #giveSlot(slot: Slot): void {
    if (this.#slots.length < KEEP_SLOTS) {
      this.#slots.push(slot);
      return;
    }
    // Not kept: the threads that hold it let it go too.
    for (const thread of slot.known) if (this.#pool.includes(thread)) thread.worker.postMessage({ op: 'forget', slot: slot.id });
  }

  /** The least loaded thread, starting one while fewer than `threads` run. */
  #pick(): Thread {
    if (this.#closed) throw new UnavailableError('hash pool is closed');
    let best: Thread | undefined;
    for (const t of this.#pool) if (!best || t.busy < best.busy || (t.busy === best.busy && t.bytes < best.bytes)) best = t;
    if (best && (best.busy === 0 || this.#pool.length >= this.threads)) return best;
    return this.#start();
  }

  #start(): Thread {
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'ferry-hash' });
    const thread: Thread = { worker, busy: 0, bytes: 0 };
    worker.unref();
    worker.on('message', (m: { id: number; hex?: string; error?: string }) => {
      const task = this.#pending.get(m.id);
      if (!task) return;
      this.#settle(m.id, task);
      if (m.error !== undefined) task.reject(new UnavailableError(`hashing failed: ${m.error}`));
      else task.resolve(m.hex);
    });
    const fail = (err: unknown) => {
      const index = this.#pool.indexOf(thread);
      if (index >= 0) this.#pool.splice(index, 1);
      for (const [id, task] of this.#pending) {
        if (task.thread !== thread) continue;
        this.#settle(id, task);
        task.reject(new UnavailableError(`hashing thread stopped: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.#pool.push(thread);
    return thread;
  }

  /**
   * Bytes, when given, are in shared memory: the message carries a view, never a copy; a slot
   * goes with its first message to a thread and is named by its number afterwards.
   */
  #send(
    thread: Thread,
    message: { op: string; session?: number; bytes?: Uint8Array; slot?: Slot; length?: number },
    bytes: number,
  ): Promise<string | undefined> {
    const id = this.#nextId++;
    const { slot, ...rest } = message;
    const wire = slot ? { ...rest, slot: slot.id, ...(slot.known.has(thread) ? {} : { bytes: slot.bytes }) } : rest;
    slot?.known.add(thread);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, thread, bytes });
      // A thread with work keeps the process alive until the answer is in.
      if (thread.busy === 0) thread.worker.ref();
      thread.busy += 1;
      thread.bytes += bytes;
      thread.worker.postMessage({ ...wire, id });
    });
  }

  #settle(id: number, task: Pending): void {
    this.#pending.delete(id);
    task.thread.busy -= 1;
    task.thread.bytes -= task.bytes;
    if (task.thread.busy === 0) task.thread.worker.unref();
  }
}

let shared: HashPool | undefined;

/** The process's hash pool, started on first use (threads start as work arrives). */
export function hashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}

/** Bytes in memory shared with the hashing threads: handed to them without a copy. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}
